"""Build lines become a few events, not one per line, and none is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.environments.prepare import _forward

pytestmark = pytest.mark.unit


async def test_lines_are_batched_and_all_delivered() -> None:
    sent: list[dict[str, Any]] = []

    async def emit(event: dict[str, Any]) -> None:
        sent.append(event)

    lines: asyncio.Queue[str | None] = asyncio.Queue()
    for n in range(120):
        lines.put_nowait(f"line {n}")
    forwarding = asyncio.create_task(_forward(lines, emit, "img:1"))
    await asyncio.sleep(1.3)  # a late line waits at most a second
    lines.put_nowait("late")
    lines.put_nowait(None)
    await forwarding
    delivered = [line for event in sent for line in event["lines"]]
    assert delivered == [f"line {n}" for n in range(120)] + ["late"]
    assert [len(event["lines"]) for event in sent] == [50, 50, 20, 1]
    assert {event["phase"] for event in sent} == {"output"}


async def test_a_failing_emit_does_not_stop_the_build() -> None:
    async def emit(_: dict[str, Any]) -> None:
        raise RuntimeError("valkey away")

    lines: asyncio.Queue[str | None] = asyncio.Queue()
    lines.put_nowait("a")
    lines.put_nowait(None)
    await asyncio.wait_for(_forward(lines, emit, "img:1"), 5)
