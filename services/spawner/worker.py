"""From a JetStream message to an agent run, and back to ack / nak.

The message stays in flight for the whole run: a lease (in-progress acks the server
confirms) keeps it from being redelivered while the agent lives; if this process dies,
JetStream redelivers it after the ack wait and the next spawner resumes the task on a
fresh worktree. Each claim is a new attempt whose number fences every write it makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry.trace import Span, SpanKind
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.spawner.agent_run import AgentRun, RunContext, Verdict
from services.spawner.exhausted import fail_exhausted, remove_leftovers
from services.spawner.kills import KillRegistry, Running
from services.spawner.lease import Lease
from shared import tracing
from shared.backoff import backoff_delay
from shared.errors import IllegalTransitionError, StaleAttemptError
from shared.lifecycle import AGENT_FINAL, TASK_FINAL
from shared.messages.agents import AgentRecord, AgentState, TaskState
from shared.messages.tasks import TaskQueued

log = logging.getLogger(__name__)


class Worker:
    """Handles task messages for one spawner process."""

    def __init__(
        self,
        ctx: RunContext,
        kills: KillRegistry,
        nc: Client,
        on_budget_hold: Callable[[], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.kills = kills
        self.nc = nc
        self.on_budget_hold = on_budget_hold
        """Called when a task meets the deployment's budget hold: the intake pauses
        until it is lifted (no message spends its deliveries waiting for the next day)."""
        self._leases: dict[str, Lease] = {}
        """The lease of each agent running here, by agent id."""

    async def handle(self, msg: Msg) -> None:
        """Run the task in ``msg`` and settle the message.

        The delivery is a span of the task's trace (its context came in the message's
        headers, put there at spawn), so every attempt, retries included, and all it asks
        of gitops and gates hang under the gateway's ``spawn``.
        """
        try:
            task = TaskQueued.from_bytes(msg.data)
        except ValidationError:
            log.error("dropping a malformed task message")
            await msg.term()
            return
        if self._redelivered_while_running(msg, task):  # before the hold: never naked
            ids = {"agent_id": task.agent_id, "task_id": task.request.task_id}
            log.warning("delivered again while it runs here: the run goes on", extra=ids)
            return
        if await self._held():
            await msg.nak(delay=1.0)  # a kill-all or the spent budget: the task waits
            return
        with tracing.serving(
            "attempt",
            msg.headers,
            kind=SpanKind.CONSUMER,
            agent_id=task.agent_id,
            task_id=task.request.task_id,
        ) as span:
            await self._handle(msg, task, span)

    async def _handle(self, msg: Msg, task: TaskQueued, span: Span) -> None:
        ids = {"agent_id": task.agent_id, "task_id": task.request.task_id}
        try:
            attempt = await self._claim(task)
        except RedisError:
            log.warning("Valkey unreachable: the task goes back to the queue", extra=ids)
            await msg.nak(delay=self.ctx.settings.retry_base_delay_s)
            return
        except StaleAttemptError:  # another delivery claimed it meanwhile: not ours to settle
            log.info("task claimed by another spawner meanwhile", extra=ids)
            return
        if attempt is None:
            span.set_attribute("mosaic.outcome", "not run (final or taken)")
            await msg.ack()
            return
        span.set_attribute("mosaic.attempt", attempt)
        current = asyncio.current_task()
        assert current is not None
        running = self.kills.add(task.agent_id, task.request.task_id, current)
        lease = Lease(
            msg,
            self.nc,
            ack_wait_s=self.ctx.settings.task_ack_wait_s,
            lease_s=self.ctx.settings.lease_s(),
            on_lost=lambda: _lose(running),
        )
        keepalive = asyncio.create_task(lease.keep())
        self._leases[task.agent_id] = lease
        try:
            verdict = await AgentRun(self.ctx, task, running, attempt).execute()
        except asyncio.CancelledError:
            verdict = Verdict.HAND_BACK
        finally:
            keepalive.cancel()
            self.kills.discard(task.agent_id)
            self._leases.pop(task.agent_id, None)
        msg = lease.msg  # the newest delivery settles the task
        if verdict in (Verdict.RETRY, Verdict.HAND_BACK) and self._last_delivery(msg):
            verdict = await self._exhausted(task, attempt, verdict)
        span.set_attribute("mosaic.outcome", verdict.value)
        with contextlib.suppress(Exception):
            if verdict is Verdict.DONE:
                await msg.ack_sync()  # the server confirms: a settled task is never redelivered
            elif verdict is Verdict.RETRY:
                delay = self._backoff(attempt)
                log.info("retrying in %.1fs", delay, extra=ids)
                await msg.nak(delay=delay)
            elif verdict is Verdict.HAND_BACK:
                await msg.nak()
            # LOST: another spawner owns the task now; its message is not ours to settle

    def _redelivered_while_running(self, msg: Msg, task: TaskQueued) -> bool:
        """Whether ``task`` is running here already; its lease then renews and settles
        ``msg``. Claimed again, the redelivery would read the running attempt as one
        whose spawner crashed: end the task (no retries left) or start it over."""
        lease = self._leases.get(task.agent_id)
        running = self.kills.agents.get(task.agent_id)
        if lease is None or running is None or running.task_id != task.request.task_id:
            return False
        lease.adopt(msg)
        return True

    async def _held(self) -> bool:
        """Whether intake is held: a kill-all, or the spent daily budget, which also
        pauses this spawner's intake until it is lifted (``on_budget_hold``). Checked
        before a delivery becomes a span, so a task waiting out a hold does not add a
        span a second. Valkey unreachable counts as not held: the claim meets the same
        error and gives the task back."""
        try:
            hold = await self.ctx.tracker.store.held()
        except RedisError:
            return False
        if hold is not None and hold.get("kind") == "budget" and self.on_budget_hold is not None:
            self.on_budget_hold()
        return hold is not None

    async def _claim(self, task: TaskQueued) -> int | None:
        """Move the task to ``assigned`` here; None when it must not run (final, killed).

        The claim is fenced by the attempt number read: of two spawners claiming the same
        task, one moves ``attempts`` on and the other is refused.
        """
        store = self.ctx.tracker.store
        record = await store.get_agent(task.agent_id)
        if record is None or record.state in AGENT_FINAL or record.task_state in TASK_FINAL:
            return None
        tracker, tid = self.ctx.tracker, task.request.task_id
        if record.task_state in (TaskState.ASSIGNED, TaskState.EXECUTING):
            # its previous spawner died mid-run (that attempt counts): fresh attempt or end
            if await self._ended_after_crash(task, record):
                return None
            agent = AgentState.SPAWNING if record.state == AgentState.RUNNING else None
            reason = f"attempt {record.attempts}: its spawner stopped mid-run"
            try:
                await tracker.transition(
                    task.agent_id,
                    task_id=tid,
                    agent=agent,
                    task=TaskState.PENDING,
                    detail={"retry": "redelivered after its spawner stopped"},
                    fence=record.attempts,
                    append={"attempt_reasons": reason},
                )
            except (IllegalTransitionError, StaleAttemptError):
                return None
        attempt = record.attempts + 1
        try:
            await tracker.transition(
                task.agent_id,
                task_id=tid,
                task=TaskState.ASSIGNED,
                fields={"spawner": self.ctx.instance, "host": self.ctx.host, "attempts": attempt},
                fence=record.attempts,
            )
        except (IllegalTransitionError, StaleAttemptError):
            return None  # killed or taken meanwhile
        return attempt

    async def _ended_after_crash(self, task: TaskQueued, record: AgentRecord) -> bool:
        """A redelivered task whose attempts are all spent ends ``failed`` here."""
        max_attempts = task.request.options.max_retries + 1
        if record.attempts < max_attempts:
            return False
        reason = (
            f"attempt {record.attempts}: its spawner stopped mid-run, "
            f"and maxRetries ({task.request.options.max_retries}) is spent"
        )
        if await fail_exhausted(self.ctx.tracker, task, reason, fence=record.attempts):
            await remove_leftovers(self.ctx.gitops, self.ctx.tracker, task)
        return True

    def _last_delivery(self, msg: Msg) -> bool:
        """Whether JetStream will not deliver ``msg`` again after this delivery."""
        limit = self.ctx.settings.task_max_deliver
        try:
            return limit > 0 and msg.metadata.num_delivered >= limit
        except Exception:  # not a JetStream message (never in the spawner)
            return False

    async def _exhausted(self, task: TaskQueued, attempt: int, verdict: Verdict) -> Verdict:
        """The last delivery cannot go back: fail the task (then the message is acked)."""
        limit = self.ctx.settings.task_max_deliver
        why = "retry" if verdict is Verdict.RETRY else "hand-back"
        reason = f"attempt {attempt}: no {why}: the queue's {limit} deliveries are spent"
        try:
            await fail_exhausted(self.ctx.tracker, task, reason, fence=attempt)
        except StaleAttemptError:
            return Verdict.LOST
        except RedisError:
            log.error("could not fail an exhausted task (Valkey unreachable)", exc_info=True)
        return Verdict.DONE

    def _backoff(self, attempt: int) -> float:
        s = self.ctx.settings
        return backoff_delay(attempt, base=s.retry_base_delay_s, cap=s.retry_max_delay_s)


def _lose(running: Running) -> None:
    """The lease lapsed: stop the run; it kills its sandbox and writes nothing."""
    running.lease_lost = True
    running.task.cancel("lease lost: NATS unreachable for longer than the lease")
