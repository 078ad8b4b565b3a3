"""HTTP response models only the gateway writes; the answers the client reads too are in
``shared.messages.http``, request models in ``shared.messages``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from shared.messages.base import CamelModel
from shared.messages.http import HoldStatus
from shared.messages.spawners import SpawnerReadiness

_Out = CamelModel


class Health(_Out):
    """``GET /health`` (the original spec's shape, plus YOLO, dependencies and spawners).

    ``status`` follows NATS and Valkey only (the gateway's own health); whether agents
    can run is in ``spawners`` and ``warnings``.
    """

    status: Literal["healthy", "degraded"]
    uptime: float
    timestamp: datetime
    quality_gates_disabled: bool = False
    checks: dict[str, str] = {}
    spawners: list[SpawnerReadiness] = []
    """Live spawners (heartbeat not expired), by instance name."""
    unsafe: bool = False
    """True when a live spawner runs agents without a sandbox (``MOSAIC_SANDBOX=none``)."""
    warnings: list[str] = []
    """What an operator should know: unsafe spawners, no spawner able to run agents."""


def hold_status(raw: dict[str, Any] | None) -> HoldStatus:
    """The answer for ``StateStore.held()``'s value."""
    if raw is None:
        return HoldStatus(held=False)
    return HoldStatus(
        held=True,
        kind=raw.get("kind"),
        reason=raw.get("reason"),
        requested_by=raw.get("requestedBy"),
        at=raw.get("at"),
    )
