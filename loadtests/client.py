"""The HTTP calls the scenarios make, with progress shown while they wait."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime
from typing import Any

import httpx

FINAL = {"completed", "failed", "killed"}


def seconds(iso: str) -> float:
    """An ISO timestamp from the API as epoch seconds."""
    return datetime.fromisoformat(iso).timestamp()


async def submit_all(
    http: httpx.AsyncClient, bodies: list[dict[str, Any]], parallel: int = 32
) -> tuple[list[str], list[str]]:
    """Submit every body (``parallel`` at a time); returns (agent ids, error texts)."""
    gate = asyncio.Semaphore(parallel)
    ids: list[str] = []
    errors: list[str] = []

    async def one(body: dict[str, Any]) -> None:
        async with gate:
            try:
                answer = await http.post("/agents/spawn", json=body)
            except httpx.TransportError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
        if answer.status_code in (200, 202):
            ids.append(answer.json()["agentId"])
        else:
            errors.append(f"{answer.status_code}: {answer.text[:200]}")

    await asyncio.gather(*(one(b) for b in bodies))
    return ids, errors


async def queue(http: httpx.AsyncClient) -> dict[str, Any]:
    """``GET /queue``."""
    result: dict[str, Any] = (await http.get("/queue")).json()
    return result


async def wait_until(
    http: httpx.AsyncClient,
    done: Any,
    timeout: float,
    label: str,
    quiet: bool = False,
    interval: float = 0.5,
) -> dict[str, Any]:
    """Poll ``/queue`` every ``interval`` seconds until ``done(stats)``; prints a progress
    line while waiting. A latency measured with it is only as fine as ``interval``."""
    deadline = time.monotonic() + timeout
    stats = await queue(http)
    while not done(stats):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: not done after {timeout}s: {stats['tasksByState']}")
        if not quiet:
            agents = stats["agentsByState"]
            sys.stderr.write(
                f"\r  {label}: waiting {stats['waiting']:5d}  running {agents.get('running', 0):5d}"
                f"  completed {agents.get('completed', 0):5d}  failed {agents.get('failed', 0):4d}"
                f"  killed {agents.get('killed', 0):4d} "
            )
            sys.stderr.flush()
        await asyncio.sleep(interval)
        stats = await queue(http)
    if not quiet:
        sys.stderr.write("\n")
    return stats


async def records(
    http: httpx.AsyncClient, ids: list[str], parallel: int = 32
) -> list[dict[str, Any]]:
    """Status and event history of each agent."""
    gate = asyncio.Semaphore(parallel)

    async def one(agent_id: str) -> dict[str, Any]:
        async with gate:
            record: dict[str, Any] = (await _get(http, f"/agents/{agent_id}/status")).json()
            record["events"] = (await _get(http, f"/agents/{agent_id}/events")).json()
        return record

    return list(await asyncio.gather(*(one(i) for i in ids)))


async def _get(http: httpx.AsyncClient, path: str, attempts: int = 3) -> httpx.Response:
    """GET, again on a transport error: a pooled connection idle past the server's
    keep-alive can be closed just as it is reused (after a long wait, most are)."""
    for attempt in range(1, attempts + 1):
        try:
            return await http.get(path)
        except httpx.TransportError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def first_at(record: dict[str, Any], state: str) -> float | None:
    """When the agent first entered ``state`` (epoch seconds)."""
    for event in record["events"]:
        if event.get("state") == state:
            return seconds(event["at"])
    return None


def task_body(
    repo: str, task_id: str, plan: list[dict[str, Any]], **options: Any
) -> dict[str, Any]:
    """A spawn request with a scripted plan."""
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": repo, "branch": "main", "workItems": [f"load task {task_id}"]},
        "options": {"plan": plan, "maxRetries": 0, **options},
        "gateProfile": "minimal",
        "priority": 5,
    }
