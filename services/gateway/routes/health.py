"""Liveness: the original spec's ``GET /health``, open to all (no secrets in it)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from services.gateway.deps import Deps
from services.gateway.schemas import Health
from shared.messages.base import utcnow
from shared.messages.spawners import SpawnerCapability
from shared.spawners import why_not_ready

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, response_model_by_alias=True)
async def health(deps: Deps) -> Health:
    """Healthy when NATS and Valkey answer; shows whether quality gates are disabled,
    what each live spawner runs agents with, and warns when one runs them unsafely."""
    checks: dict[str, str] = {}
    checks["nats"] = "ok" if deps.broker.connection.is_connected else "down"
    spawners: list[SpawnerCapability] = []
    try:
        await deps.store.redis.ping()
        checks["valkey"] = "ok"
        spawners = await deps.spawners.live()
    except Exception:
        checks["valkey"] = "down"
    healthy = all(v == "ok" for v in checks.values())
    return Health(
        status="healthy" if healthy else "degraded",
        uptime=round(time.monotonic() - deps.started, 3),
        timestamp=utcnow(),
        quality_gates_disabled=deps.quality.yolo_mode,
        checks=checks,
        spawners=list(spawners),  # shown as SpawnerReadiness: the record's own times stay out
        unsafe=any(s.ready and s.unsafe for s in spawners),
        warnings=_warnings(spawners),
    )


def _warnings(spawners: list[SpawnerCapability]) -> list[str]:
    if not spawners:
        return ["no spawner is running: spawned tasks wait in the queue until one starts"]
    out = [
        f"UNSAFE: {s.instance} runs agents without a sandbox (MOSAIC_SANDBOX=none): "
        "their commands run as bare host processes"
        for s in spawners
        if s.ready and s.unsafe
    ]
    problem = why_not_ready(spawners)
    if problem is not None:
        out.append(problem)
    elif spawners:
        out += [
            f"{s.instance} runs no agent: {'; '.join(s.problems)}" for s in spawners if not s.ready
        ]
    return out
