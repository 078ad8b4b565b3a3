"""An attempt's spend: price each model call (the worker's and the AI reviewer's), charge
it in Valkey, and stop the run when a budget is reached.

The charge is one atomic step in the store (``StateStore.charge``): the agent's spend, the
UTC day's, the all-time counters and the deployment's hold. Whoever's charge reaches the
daily budget writes the ``budget_hold`` audit entry; every spawner sees the hold through
``StateStore.held``. What stops a run is ``BudgetExhaustedError``, raised here and turned
into ``failed`` with reason ``budget`` by the attempt (``AgentRun``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.spawner.errors import BudgetExhaustedError
from services.spawner.runtime.providers.base import Usage
from shared.audit import KIND_BUDGET_HOLD
from shared.messages.audit import AuditEntry
from shared.messages.gates import GateDecision
from shared.messages.spend import Spend, TokenUsage
from shared.messages.tasks import SpawnAgentRequest
from shared.pricing import PriceSettings, PriceTable
from shared.settings import BudgetSettings
from shared.tracker import AttemptTracker

log = logging.getLogger(__name__)

AuditWriter = Callable[[AuditEntry], Awaitable[object]]


@dataclass(frozen=True)
class SpendPolicy:
    """What every run of this process prices with and is bounded by."""

    prices: PriceTable = field(default_factory=lambda: PriceSettings().table())
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    audit: AuditWriter | None = None
    """Writes the ``budget_hold`` entry (the spawner's JetStream); None: logged only."""


class SpendMeter:
    """Charges one attempt's model calls; raises ``BudgetExhaustedError`` at a budget."""

    def __init__(
        self,
        policy: SpendPolicy,
        tracker: AttemptTracker,
        request: SpawnAgentRequest,
        model: str,
    ) -> None:
        self._policy = policy
        self._tracker = tracker
        self._request = request
        self._model = model
        self._warned: set[str] = set()
        self._log = {"agent_id": tracker.agent_id, "task_id": tracker.task_id}
        self.spend = Spend()
        """The agent's spend after the last charge (every attempt's)."""

    async def worker_call(self, usage: Usage) -> None:
        """Charge one of the agent's own model calls (the loop's ``Meter``)."""
        await self.charge(
            TokenUsage(
                model=self._model,
                input_tokens=usage.input,
                output_tokens=usage.output,
                cache_write_tokens=usage.cache_write,
                cache_read_tokens=usage.cache_read,
            )
        )

    async def gate_calls(self, decision: GateDecision) -> None:
        """Charge the model calls the gates made for this agent (the AI reviewer)."""
        for result in decision.results:
            if result.usage is not None:
                await self.charge(result.usage)

    async def charge(self, usage: TokenUsage) -> None:
        """Price and charge ``usage``; raise when the task's budget is reached, or the
        day's when running agents are set to stop (``MOSAIC_BUDGET_ON_EXHAUSTED=stop``)."""
        cost = self._policy.prices.cost(usage)
        if not cost.known:
            await self._unpriced(usage.model)
        budget = self._policy.budget
        charged = await self._tracker.store.charge(
            self._tracker.agent_id,
            usage,
            cost.usd,
            agent_type=self._request.agent_type,
            limit_usd=budget.mosaic_budget_usd_per_day,
            fence=self._tracker.attempt,
        )
        self.spend = charged.spend
        if charged.newly_held:
            await self._hold_audited(charged.day_usd)
        task_budget = self._request.options.budget
        why = task_budget.exceeded_by(charged.spend) if task_budget is not None else None
        if why is not None:
            raise BudgetExhaustedError(f"budget: {why}")
        if charged.held and budget.mosaic_budget_on_exhausted == "stop":
            limit = budget.mosaic_budget_usd_per_day or 0.0
            raise BudgetExhaustedError(
                f"budget: the deployment's daily budget of ${limit:.2f} is spent "
                "(MOSAIC_BUDGET_ON_EXHAUSTED=stop)"
            )

    async def _unpriced(self, model: str) -> None:
        """Say, once per attempt and model, that the default price was used."""
        if model in self._warned:
            return
        self._warned.add(model)
        price = self._policy.prices.default
        text = (
            f"model {model!r} has no price in the table: priced at the default "
            f"(${price.input:g}/${price.output:g} per million input/output tokens); "
            "set MOSAIC_PRICES or MOSAIC_PRICES_FILE"
        )
        log.warning("%s", text, extra=self._log)
        await self._tracker.record("warning", {"warning": text, "model": model})

    async def _hold_audited(self, day_usd: float) -> None:
        limit = self._policy.budget.mosaic_budget_usd_per_day or 0.0
        reason = f"daily budget of ${limit:.2f} reached (${day_usd:.4f} spent)"
        log.warning("intake held: %s", reason, extra=self._log)
        if self._policy.audit is None:
            return
        entry = AuditEntry(
            kind=KIND_BUDGET_HOLD,
            actor="spawner",
            reason=reason,
            agent_id=self._tracker.agent_id,
            detail={
                "limitUsd": limit,
                "spentUsd": day_usd,
                "onExhausted": self._policy.budget.mosaic_budget_on_exhausted,
            },
        )
        try:
            await self._policy.audit(entry)
        except Exception:  # the hold is in force either way; the trail must not stop it
            log.warning("could not write the budget_hold audit entry", exc_info=True,
                        extra=self._log)  # fmt: skip
