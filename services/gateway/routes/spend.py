"""``GET /spend``: what the agents cost, per UTC day and per task type, and the budget."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.gateway.auth import RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse
from services.gateway.schemas import hold_status
from shared.messages.base import CamelModel, utcnow
from shared.messages.http import HoldStatus
from shared.messages.spend import Spend
from shared.spending import TOKEN_FIELDS
from shared.store import SPEND_DAYS_KEPT

router = APIRouter(tags=["spend"])


class TypeSpend(CamelModel):
    """One task type's spend on a day."""

    usd: float = 0.0
    tokens: int = 0
    """All four kinds of token together."""


class DaySpend(Spend):
    """One UTC day: the total (``usd`` and the four token counts), per task type, per
    model and per federation peer (``byModel``, ``byPeer``: US dollars)."""

    day: str
    by_type: dict[str, TypeSpend] = {}
    by_model: dict[str, float] = {}
    by_peer: dict[str, float] = {}
    """Federation peers' agents here, in US dollars (a peer's ``maxUsdPerDay``)."""


class SpendReport(CamelModel):
    """Today's spend against the daily budget, and the days before it."""

    day: str
    """Today (UTC), ``YYYY-MM-DD``."""
    limit_usd: float | None
    """``MOSAIC_BUDGET_USD_PER_DAY``; null: no daily budget."""
    remaining_usd: float | None
    on_exhausted: Literal["finish", "stop"]
    hold: HoldStatus
    today: DaySpend
    days: list[DaySpend]
    """Newest first, today included."""


def day_spend(day: str, raw: dict[str, float]) -> DaySpend:
    """A day's spend from the store's day hash (``StateStore.spend_of_days``)."""
    by_type: dict[str, TypeSpend] = {}
    by_model: dict[str, float] = {}
    by_peer: dict[str, float] = {}
    """Federation peers' agents here, in US dollars (a peer's ``maxUsdPerDay``)."""
    for key, value in raw.items():
        if key.startswith("type:"):
            kind, _, what = key[len("type:") :].rpartition(":")
            entry = by_type.setdefault(kind, TypeSpend())
            if what == "usd":
                entry.usd = round(value, 6)
            else:
                entry.tokens += int(value)
        elif key.startswith("model:") and key.endswith(":usd"):
            by_model[key[len("model:") : -len(":usd")]] = round(value, 6)
        elif key.startswith("peer:") and key.endswith(":usd"):
            by_peer[key[len("peer:") : -len(":usd")]] = round(value, 6)
    counts = {name: int(raw.get(name, 0)) for name in TOKEN_FIELDS}
    return DaySpend(
        day=day,
        usd=round(raw.get("usd", 0.0), 6),
        by_type=by_type,
        by_model=by_model,
        by_peer=by_peer,
        **counts,
    )


@router.get("/spend", response_model=SpendReport, responses={401: {"model": ErrorResponse}})
async def spend(
    deps: Deps,
    _: RequireOperator,
    days: Annotated[int, Query(ge=1, le=SPEND_DAYS_KEPT, description="how many days")] = 7,
) -> SpendReport:
    """Spend per UTC day (total, per task type, per model), today's against the budget."""
    now = utcnow()
    names = [(now - timedelta(days=n)).date().isoformat() for n in range(days)]
    rows = await deps.store.spend_of_days(names)
    listed = [day_spend(name, rows[name]) for name in names]
    limit = deps.budget.mosaic_budget_usd_per_day
    today = listed[0]
    on_exhausted: Literal["finish", "stop"] = (
        "stop" if deps.budget.mosaic_budget_on_exhausted == "stop" else "finish"
    )
    return SpendReport(
        day=today.day,
        limit_usd=limit,
        remaining_usd=None if limit is None else round(max(0.0, limit - today.usd), 6),
        on_exhausted=on_exhausted,
        hold=hold_status(await deps.store.held()),
        today=today,
        days=listed,
    )
