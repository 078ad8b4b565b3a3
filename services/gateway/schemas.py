"""HTTP response models of the gateway (request models come from ``shared``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from shared.messages.agents import AgentRecord
from shared.messages.base import CamelModel
from shared.messages.spawners import SpawnerReadiness

_Out = CamelModel


class SpawnAccepted(_Out):
    """The agent that will run the task (also answered for a duplicate submission)."""

    agent_id: str
    task_id: str
    state: str
    task_state: str
    duplicate: bool = False


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


class AgentList(_Out):
    """A page of agents, newest first."""

    agents: list[AgentRecord]
    total: int
    offset: int
    limit: int


class KillResult(_Out):
    """What a kill request achieved by the time it answered."""

    agent_id: str
    state: str
    killed: bool
    elapsed_ms: float


class HoldStatus(_Out):
    """Whether intake is held (no queued task starts while it is): by a kill-all
    (``kind: killall``) or by the deployment's spent daily budget (``kind: budget``)."""

    held: bool
    kind: Literal["killall", "budget"] | None = None
    reason: str | None = None
    requested_by: str | None = None
    at: str | None = None


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
