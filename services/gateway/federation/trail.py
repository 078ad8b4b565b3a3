"""Audit entries for federation acts (the ``AUDIT`` JetStream stream, best effort)."""

from __future__ import annotations

import logging
from typing import Any

from services.gateway.deps import Resources
from shared.audit import audit
from shared.messages.audit import AuditEntry

log = logging.getLogger(__name__)

KIND_PEER = "federation_peer"
"""A peer registered, activated by handshake, suspended or revoked."""
KIND_COMMAND = "federation_command"
"""A signed command from a peer, executed or refused (on the spoke)."""
KIND_SENT = "federation_sent"
"""A command this instance sent to a peer (on the hub)."""
KIND_KILL_ALL = "federation_kill_all"
"""A federated kill-all ordered here (on the hub)."""


async def record(
    deps: Resources,
    kind: str,
    actor: str,
    reason: str = "",
    *,
    agent_id: str | None = None,
    task_id: str | None = None,
    **detail: Any,
) -> None:
    """Write one entry; a failure is logged, never raised (the act itself stands)."""
    entry = AuditEntry(
        kind=kind,
        actor=actor,
        reason=reason,
        agent_id=agent_id,
        task_id=task_id,
        detail=detail,
    )
    try:
        await audit(deps.js, entry, timeout=2.0)
    except Exception:
        log.warning("could not write the %s audit entry (actor %s)", kind, actor, exc_info=True)
