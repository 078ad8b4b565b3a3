"""``GET /audit``: the audit trail (kills, kill-alls, resumes, YOLO skips, federation)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query
from nats.errors import Error as NatsError

from services.gateway.auth import RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse
from shared.audit_query import read_audit
from shared.ids import AGENT_ID_PATTERN
from shared.messages.audit import AuditEntry

router = APIRouter(tags=["audit"])


@router.get(
    "/audit",
    response_model=list[AuditEntry],
    responses={
        401: {"model": ErrorResponse, "description": "missing or invalid token"},
        422: {"model": ErrorResponse, "description": "invalid filter; names the field"},
        503: {"model": ErrorResponse, "description": "NATS unavailable"},
    },
)
async def audit_trail(
    deps: Deps,
    _: RequireOperator,
    kind: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z][a-z0-9_-]{0,63}$",
            description=(
                "only this kind: kill, kill_all, resume, gate_skipped, merge, budget_hold, "
                "federation_…"
            ),
        ),
    ] = None,
    agent_id: Annotated[
        str | None,
        Query(alias="agentId", pattern=AGENT_ID_PATTERN, description="only this agent"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
) -> list[AuditEntry]:
    """Audited acts, newest first: who did what (``actor``), why, and to which agent."""
    try:
        return await read_audit(deps.js, kind=kind, agent_id=agent_id, limit=limit)
    except (NatsError, TimeoutError):  # e.g. a filter matching nothing the stream holds
        log.warning("audit read found nothing for kind=%s agent=%s", kind, agent_id, exc_info=True)
        return []


log = logging.getLogger(__name__)
