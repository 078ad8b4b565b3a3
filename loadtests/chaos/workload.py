"""The agents that run while faults land: kept at M unfinished until the faults are over.

Each agent sleeps a moment in its sandbox (so a fault finds it mid-run), writes one file,
and finishes through gates, commit and push. The tasks allow several retries: a fault
must cost an attempt at most, and the figures count how the tasks ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from loadtests.client import FINAL, records, submit_all, task_body

MAX_RETRIES = 10
"""Each task's ``maxRetries``: room for several faults per task."""


def plan(name: str, sleep_s: float) -> list[dict[str, Any]]:
    """Sleep ``sleep_s`` in the sandbox, write ``chaos/<name>.txt``, finish."""
    return [
        {"tool": "run_command", "input": {"command": f"sleep {sleep_s:.1f}", "timeout": 300}},
        {"tool": "write_file", "input": {"path": f"chaos/{name}.txt", "content": f"{name}\n"}},
        {"tool": "finish", "input": {"summary": f"wrote chaos/{name}.txt"}},
    ]


async def unfinished(http: httpx.AsyncClient) -> dict[str, int] | None:
    """Tasks not final, by state (``/queue``); None while the system does not answer."""
    try:
        answer = await http.get("/queue")
        if answer.status_code != 200:
            return None
        tasks: dict[str, int] = answer.json()["tasksByState"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return {s: tasks.get(s, 0) for s in ("pending", "assigned", "executing")}


async def running(http: httpx.AsyncClient) -> int | None:
    """Agents ``running`` now; None while the system does not answer."""
    try:
        answer = await http.get("/queue")
        if answer.status_code != 200:
            return None
        return int(answer.json()["agentsByState"].get("running", 0))
    except (httpx.HTTPError, ValueError, KeyError):
        return None


@dataclass
class Workload:
    """Keeps ``agents`` tasks unfinished on ``repository`` until ``stop``."""

    http: httpx.AsyncClient
    repository: str
    agents: int
    sleep_s: tuple[float, float] = (0.5, 2.5)
    ids: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Spawns the gateway answered with an error (not accepted: not counted as lost)."""
    _run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def submit(self, count: int) -> None:
        """Submit ``count`` more tasks."""
        bodies: list[dict[str, Any]] = []
        for _ in range(count):
            name = f"{self._run}-{len(self.ids) + len(self.refused) + len(bodies)}"
            sleep = random.uniform(*self.sleep_s)
            steps = plan(name, sleep)
            bodies.append(
                task_body(self.repository, f"chaos-{name}", steps, maxRetries=MAX_RETRIES)
            )
        ids, errors = await submit_all(self.http, bodies)
        self.ids += ids
        self.refused += errors

    def start(self) -> None:
        """Top up to ``agents`` unfinished tasks every half second, in the background."""
        self._task = asyncio.create_task(self._keep_full())

    async def stop(self) -> None:
        """Submit no more."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _keep_full(self) -> None:
        while not self._stopping.is_set():
            counts = await unfinished(self.http)
            if counts is not None:
                missing = self.agents - sum(counts.values())
                if missing > 0:
                    await self.submit(missing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.5)

    async def settle(self, timeout: float) -> list[dict[str, Any]]:
        """Wait until every accepted agent is final (or ``timeout``); their records."""
        deadline = time.monotonic() + timeout
        pending = list(self.ids)
        while pending and time.monotonic() < deadline:
            still = []
            for agent_id in pending:
                try:
                    state = (await self.http.get(f"/agents/{agent_id}/status")).json()["state"]
                except (httpx.HTTPError, ValueError, KeyError):
                    state = None
                if state not in FINAL:
                    still.append(agent_id)
            pending = still
            if pending:
                await asyncio.sleep(1)
        return await records(self.http, self.ids)
