"""Liveness: the original spec's ``GET /health``, open to all (no secrets in it)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from services.gateway.deps import Deps
from services.gateway.schemas import Health
from shared.messages.base import utcnow

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, response_model_by_alias=True)
async def health(deps: Deps) -> Health:
    """Healthy when NATS and Valkey answer; shows whether quality gates are disabled."""
    checks: dict[str, str] = {}
    checks["nats"] = "ok" if deps.broker.connection.is_connected else "down"
    try:
        await deps.store.redis.ping()
        checks["valkey"] = "ok"
    except Exception:
        checks["valkey"] = "down"
    healthy = all(v == "ok" for v in checks.values())
    return Health(
        status="healthy" if healthy else "degraded",
        uptime=round(time.monotonic() - deps.started, 3),
        timestamp=utcnow(),
        quality_gates_disabled=deps.quality.yolo_mode,
        checks=checks,
    )
