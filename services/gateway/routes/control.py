"""Kill-all hold: see it, and lift it (admins only). Killing itself is in ``agents``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from services.gateway.auth import RequireAdmin, RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse
from shared import subjects
from shared.audit import KIND_RESUME, audit
from shared.messages.audit import AuditEntry
from shared.messages.base import CamelModel
from shared.messages.kill import KillOrdered

router = APIRouter(prefix="/agents", tags=["killswitch"])
log = logging.getLogger(__name__)


class HoldStatus(CamelModel):
    """Whether a kill-all is in force (no queued task starts while it is)."""

    held: bool
    reason: str | None = None
    requested_by: str | None = None
    at: str | None = None


def _status(raw: dict[str, Any] | None) -> HoldStatus:
    if raw is None:
        return HoldStatus(held=False)
    return HoldStatus(
        held=True, reason=raw.get("reason"), requested_by=raw.get("requestedBy"), at=raw.get("at")
    )


@router.get("/hold", response_model=HoldStatus, responses={401: {"model": ErrorResponse}})
async def hold(deps: Deps, _: RequireOperator) -> HoldStatus:
    """The kill-all in force, if any."""
    return _status(await deps.store.held())


@router.post(
    "/resume",
    response_model=HoldStatus,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
)
async def resume(deps: Deps, _: RequireAdmin) -> HoldStatus:
    """Lift a kill-all: queued tasks start again (admins only). Audited as ``resume``."""
    before = await deps.store.held()
    lifted = await deps.store.release_all()
    order = KillOrdered(reason="resume via HTTP", requested_by="http:admin")
    await deps.broker.connection.publish(subjects.KILL_RESUME, order.to_bytes())
    entry = AuditEntry(
        kind=KIND_RESUME,
        actor="http:admin",
        reason=order.reason or "",
        detail={"lifted": lifted, "hold": before},
    )
    try:
        await audit(deps.js, entry, timeout=2.0)
    except Exception:  # the resume itself must not fail on the trail
        log.warning("could not write the resume audit entry", exc_info=True)
    return _status(await deps.store.held())
