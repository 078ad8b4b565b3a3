"""Intake holds (a kill-all, the spent daily budget): see them, and lift them (admins only).
Killing itself is in ``agents``."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from services.gateway.auth import RequireAdmin, RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse
from services.gateway.schemas import hold_status
from shared import subjects
from shared.audit import KIND_RESUME, audit
from shared.messages.audit import AuditEntry
from shared.messages.http import HoldStatus
from shared.messages.kill import KillOrdered

router = APIRouter(prefix="/agents", tags=["killswitch"])
log = logging.getLogger(__name__)


@router.get("/hold", response_model=HoldStatus, responses={401: {"model": ErrorResponse}})
async def hold(deps: Deps, _: RequireOperator) -> HoldStatus:
    """The hold in force, if any (a kill-all, or the spent daily budget)."""
    return hold_status(await deps.store.held())


@router.post(
    "/resume",
    response_model=HoldStatus,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
)
async def resume(deps: Deps, _: RequireAdmin) -> HoldStatus:
    """Lift a kill-all, and the spent daily budget's hold for the rest of the UTC day:
    queued tasks start again (admins only). Audited as ``resume``."""
    before = await deps.store.held()
    lifted = await deps.store.release_all()
    budget_lifted = await deps.store.release_budget()
    order = KillOrdered(reason="resume via HTTP", requested_by="http:admin")
    await deps.broker.connection.publish(subjects.KILL_RESUME, order.to_bytes())
    entry = AuditEntry(
        kind=KIND_RESUME,
        actor="http:admin",
        reason=order.reason or "",
        detail={"lifted": lifted, "budgetLifted": budget_lifted, "hold": before},
    )
    try:
        await audit(deps.js, entry, timeout=2.0)
    except Exception:  # the resume itself must not fail on the trail
        log.warning("could not write the resume audit entry", exc_info=True)
    return hold_status(await deps.store.held())
