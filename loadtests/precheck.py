"""The ``precheck`` scenario: how long ``POST /agents/check`` takes, beside its floor.

A first check of a repository (gitops clones it into its cache), then ``rounds`` checks
one after another (each one asks Valkey, gitops over NATS, and reads the repository at
the branch tip), then the same number of checks in parallel; the floor is an
authenticated ``GET /agents/hold`` (one Valkey read) measured in the same run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from loadtests.client import task_body
from loadtests.stats import summary
from loadtests.target import Target

PARALLEL = 16


async def precheck(http: httpx.AsyncClient, target: Target, rounds: int) -> dict[str, Any]:
    """Check latencies (cold, sequential, parallel) and the floor, with any refusal seen."""
    run = uuid.uuid4().hex[:6]
    plan = [{"tool": "finish", "input": {"summary": "nothing to do"}}]
    body = task_body(str(target.repository), f"check-{run}", plan)
    refused: list[str] = []

    async def check() -> float:
        started = time.perf_counter()
        answer = await http.post("/agents/check", json=body)
        took = time.perf_counter() - started
        verdict = answer.json() if answer.status_code == 200 else {}
        if not verdict.get("ok"):
            failed = [c for c in verdict.get("checks", []) if not c["ok"]]
            refused.append(f"{answer.status_code}: {failed or answer.text[:200]}")
        return took

    cold = await check()
    sequential = [await check() for _ in range(rounds)]
    floor = []
    for _ in range(rounds):
        started = time.perf_counter()
        (await http.get("/agents/hold")).raise_for_status()
        floor.append(time.perf_counter() - started)
    gate = asyncio.Semaphore(PARALLEL)

    async def limited() -> float:
        async with gate:
            return await check()

    started = time.perf_counter()
    parallel = await asyncio.gather(*(limited() for _ in range(rounds)))
    span = time.perf_counter() - started
    checks, hold = summary(sequential), summary(floor)
    return {
        "scenario": "precheck",
        "rounds": rounds,
        "check_cold_ms": round(cold * 1000, 1),
        "check": checks,
        "floor_get_hold": hold,
        "check_over_floor": f"{checks['p50_ms'] / hold['p50_ms']:.1f}x (p50)",
        f"check_parallel_{PARALLEL}": summary(parallel),
        "checks_per_second_parallel": round(rounds / span, 1) if span else 0,
        "errors": refused[:5],
    }
