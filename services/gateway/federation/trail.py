"""Audit entries for federation acts (the ``AUDIT`` JetStream stream, best effort)."""

from __future__ import annotations

import logging
from typing import Any

from services.gateway.deps import Resources
from shared.audit import audit
from shared.messages.audit import AuditEntry

log = logging.getLogger(__name__)

KIND = "federation"
"""Every federation entry (``mosaic.audit.federation``); ``detail.act`` says which act."""

ACT_PEER = "peer"
"""A peer registered, activated by handshake, suspended or revoked."""
ACT_COMMAND = "command"
"""A signed command from a peer, executed or refused (on the spoke)."""
ACT_SENT = "sent"
"""A command this instance sent to a peer (on the hub)."""
ACT_KILL_ALL = "kill_all"
"""A federated kill-all ordered here (on the hub)."""


async def record(
    deps: Resources,
    act: str,
    actor: str,
    reason: str = "",
    *,
    agent_id: str | None = None,
    task_id: str | None = None,
    **detail: Any,
) -> None:
    """Write one entry; a failure is logged, never raised (the act itself stands)."""
    entry = AuditEntry(
        kind=KIND,
        actor=actor,
        reason=reason,
        agent_id=agent_id,
        task_id=task_id,
        detail={"act": act, **detail},
    )
    try:
        await audit(deps.js, entry, timeout=2.0)
    except Exception:
        log.warning(
            "could not write the federation %s audit entry (actor %s)", act, actor, exc_info=True
        )
