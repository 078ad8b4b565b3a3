"""The gitops fence: per-agent files, real flock, real threads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.gitops.errors import InvalidRequestError
from services.gitops.fencing import Fences, StaleAttemptRefusedError
from shared.messages.gitops import FencedRequest


def Request(agent_id: str, attempt: int | None) -> FencedRequest:
    """A gitops write request of ``agent_id`` sent by ``attempt``."""
    return FencedRequest(agent_id=agent_id, task_id="t1", repository="r", attempt=attempt)


async def _ok() -> str:
    return "done"


async def test_older_attempts_are_refused_newer_ones_move_the_fence(tmp_path: Path) -> None:
    fences = Fences(tmp_path / ".fences")
    assert await fences.run(Request("a1", 2), _ok) == "done"
    assert fences.current("a1") == 2
    assert await fences.run(Request("a1", 2), _ok) == "done"  # the same attempt again
    with pytest.raises(StaleAttemptRefusedError, match="attempt 1 of agent a1 is stale"):
        await fences.run(Request("a1", 1), _ok)
    assert await fences.run(Request("a1", 5), _ok) == "done"
    assert fences.current("a1") == 5
    assert fences.current("a2") == 0  # per agent
    assert await fences.run(Request("a2", 1), _ok) == "done"
    assert await fences.run(Request("a1", None), _ok) == "done"  # unfenced caller
    assert fences.current("a1") == 5


async def test_a_refused_request_does_no_work(tmp_path: Path) -> None:
    fences = Fences(tmp_path)
    await fences.run(Request("a1", 3), _ok)
    ran: list[str] = []

    async def work() -> str:
        ran.append("stale work")
        return "done"

    with pytest.raises(StaleAttemptRefusedError):
        await fences.run(Request("a1", 2), work)
    assert ran == []


async def test_the_fence_is_held_until_the_work_ends(tmp_path: Path) -> None:
    """A stale request arriving while the new attempt's create runs waits, then is refused;
    one that started first finishes before the new attempt's work begins."""
    fences = Fences(tmp_path)
    order: list[str] = []
    release = asyncio.Event()

    async def slow(name: str) -> str:
        order.append(f"{name} start")
        await release.wait()
        order.append(f"{name} end")
        return name

    first = asyncio.create_task(fences.run(Request("a1", 1), lambda: slow("attempt 1")))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(fences.run(Request("a1", 2), lambda: slow("attempt 2")))
    await asyncio.sleep(0.2)
    assert order == ["attempt 1 start"]  # attempt 2 waits for the fence
    release.set()
    assert await first == "attempt 1"
    assert await second == "attempt 2"
    assert order == ["attempt 1 start", "attempt 1 end", "attempt 2 start", "attempt 2 end"]
    with pytest.raises(StaleAttemptRefusedError):
        await fences.run(Request("a1", 1), _ok)


async def test_an_agent_id_that_cannot_name_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError):
        await Fences(tmp_path).run(Request("../escape", 1), _ok)
    assert list(tmp_path.iterdir()) == []
