"""``GET /queue``: true counts from JetStream (waiting, in flight) and Valkey (states),
the intake hold and today's spend."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.auth import RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse
from services.gateway.schemas import hold_status
from shared.messages.base import CamelModel
from shared.messages.http import HoldStatus
from shared.queue import band_depths
from shared.spending import utc_day


class BandStats(CamelModel):
    """One priority band of the queue."""

    priority: int
    waiting: int
    in_flight: int


class QueueStats(CamelModel):
    """Queue depth and how many tasks are in each state."""

    waiting: int
    """Messages stored in JetStream that no spawner holds."""
    in_flight: int
    """Messages delivered to a spawner and not yet acked (running agents)."""
    pending: int
    active: int
    completed: int
    failed: int
    by_priority: list[BandStats]
    agents_by_state: dict[str, int]
    tasks_by_state: dict[str, int]
    hold: HoldStatus
    """Whether intake is held, and by what (a kill-all, the spent daily budget)."""
    spent_today_usd: float
    """What agents spent this UTC day (``GET /spend`` for the detail)."""
    budget_usd_per_day: float | None


router = APIRouter(tags=["queue"])


@router.get("/queue", response_model=QueueStats, responses={401: {"model": ErrorResponse}})
async def queue_stats(deps: Deps, _: RequireOperator) -> QueueStats:
    """Pending, active, completed and failed counts, and the depth of each priority."""
    depths = await band_depths(deps.js)
    counts = await deps.store.counts()
    today = (await deps.store.spend_of_days([utc_day()])).popitem()[1]
    tasks = counts["task_state"]
    return QueueStats(
        waiting=sum(w for w, _ in depths.values()),
        in_flight=sum(f for _, f in depths.values()),
        pending=tasks.get("pending", 0),
        active=tasks.get("assigned", 0) + tasks.get("executing", 0),
        completed=tasks.get("completed", 0),
        failed=tasks.get("failed", 0),
        by_priority=[BandStats(priority=p, waiting=w, in_flight=f) for p, (w, f) in depths.items()],
        agents_by_state=counts["state"],
        tasks_by_state=tasks,
        hold=hold_status(await deps.store.held()),
        spent_today_usd=round(today.get("usd", 0.0), 6),
        budget_usd_per_day=deps.budget.mosaic_budget_usd_per_day,
    )
