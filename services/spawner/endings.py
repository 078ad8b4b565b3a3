"""How an attempt ends in the record, and what the queue does with its message then.

Each ending is one state change through the attempt's fenced tracker: completed or
failed by the model loop's outcome, failed or back to pending by an error (retried
while attempts are left), killed by an order, or handed back when the spawner stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import Enum
from typing import Any

from redis.exceptions import RedisError

from services.spawner.attempt import Attempt
from services.spawner.errors import BudgetExhaustedError
from services.spawner.finish_policy import Accept
from services.spawner.kills import Running
from services.spawner.runtime import tools
from services.spawner.runtime.types import AgentOutcome
from shared import tracing
from shared.errors import IllegalTransitionError, MosaicError, StaleAttemptError
from shared.kill_metrics import KILL_LATENCY, KILLS
from shared.messages.agents import AgentState, TaskState
from shared.messages.base import utcnow
from shared.store import Transition
from shared.tracker import AttemptTracker

log = logging.getLogger(__name__)


class Verdict(Enum):
    """What the queue should do with the task message after an attempt."""

    DONE = "done"  # final state reached: ack
    RETRY = "retry"  # infrastructure failure with attempts left: nak with backoff
    HAND_BACK = "hand_back"  # this spawner is stopping: nak at once for another
    LOST = "lost"  # fenced off or lease lost: another spawner owns the task, leave the message


async def outcome(attempt: Attempt, result: AgentOutcome, accepted: Accept | None) -> Verdict:
    """The model loop ended: ``completed`` with what was pushed, or ``failed``; a model
    provider that failed is an infrastructure failure (``failure``), not the work's."""
    if result.status == "failed" and result.retryable:
        reason = result.reason or "the model provider failed"
        return await failure(attempt, MosaicError(reason, retryable=True))
    fields: dict[str, Any] = {
        "completed_at": utcnow(),
        "turns": result.turns,
        "tokens_used": result.tokens_used,
    }
    if result.status != "finished":
        await attempt.tracker.transition(
            agent=AgentState.FAILED,
            task=TaskState.FAILED,
            fields={**fields, "error": result.reason},
            detail={"error": result.reason},
            reason=f"attempt {attempt.number}: {result.reason}",
        )
        return Verdict.DONE
    # Stored and shown to operators: masked with the scanner's rules.
    detail: dict[str, Any] = {"summary": tools.redact(result.summary)[:500]}
    if accepted is not None and accepted.pushed is not None:
        fields |= {
            "pushed_branch": accepted.pushed.remote_branch,
            "pushed_commit": accepted.pushed.commit,
        }
    elif accepted is not None and accepted.unchanged:
        detail["unchanged"] = "the worktree had no change: nothing was pushed"
    await attempt.tracker.transition(
        agent=AgentState.COMPLETED, task=TaskState.COMPLETED, fields=fields, detail=detail
    )
    return Verdict.DONE


async def failure(attempt: Attempt, exc: MosaicError) -> Verdict:
    """Back to pending for a retryable failure with attempts left, else ``failed``."""
    max_attempts = attempt.request.options.max_retries + 1
    reason = f"attempt {attempt.number}: {exc.message}"
    try:
        if exc.retryable and attempt.number < max_attempts:
            log.warning("attempt failed, will retry: %s", exc.message, extra=attempt.log)
            await back_to_pending(attempt, reason)
            return Verdict.RETRY
        log.error("agent failed: %s", exc.message, extra=attempt.log)
        fields: dict[str, Any] = {"completed_at": utcnow(), "error": exc.message}
        detail: dict[str, Any] = {"error": reason}
        if isinstance(exc, BudgetExhaustedError):  # stopped, its work salvaged by cleanup
            fields["stop_reason"] = detail["reason"] = "budget"
        await attempt.tracker.transition(
            agent=AgentState.FAILED,
            task=TaskState.FAILED,
            fields=fields,
            detail=detail,
            reason=reason,
        )
    except StaleAttemptError:
        return Verdict.LOST
    except IllegalTransitionError as lost:  # ended meanwhile (a kill by the killswitch)
        log.info("attempt ended elsewhere: %s", lost.message, extra=attempt.log)
    except RedisError:
        # Valkey is down: nothing can be recorded. The message goes back with a delay;
        # its next delivery finds the task still active and starts the next attempt
        # (this one is counted), so maxRetries still bounds the retries.
        log.warning("cannot record the attempt's end (Valkey unreachable): %s", reason,
                    extra=attempt.log, exc_info=True)  # fmt: skip
        return Verdict.RETRY
    return Verdict.DONE


async def back_to_pending(
    attempt: Attempt, reason: str, fields: dict[str, Any] | None = None
) -> None:
    """The task waits in the queue again (its agent back to ``spawning`` if it ran)."""
    record = await attempt.tracker.store.require_agent(attempt.agent_id)
    agent = AgentState.SPAWNING if record.state == AgentState.RUNNING else None
    await attempt.tracker.transition(
        agent=agent,
        task=TaskState.PENDING,
        fields={"error": reason, **(fields or {})},
        detail={"retry": reason},
        reason=reason,
    )


async def hand_back(attempt: Attempt, started: bool) -> None:
    """Give the task back to the queue (the attempt retired first: see the run). It
    counts as an attempt only if this one did work (its sandbox was created, so the
    model may have been called); otherwise the attempt number is given back."""
    reason = "handed back: its spawner stopped"
    fields: dict[str, Any] = {}
    if not started:
        reason += " before the attempt started (not counted)"
        fields["attempts"] = attempt.number - 1
    try:
        await back_to_pending(attempt, reason, fields)
    except (MosaicError, RedisError):
        log.warning("could not hand back", extra=attempt.log, exc_info=True)


async def killed(attempt: Attempt, running: Running) -> bool:
    """Record ``killed`` by the order ``running`` got; False when someone else (the
    killswitch) recorded the end first. A kill-all's records are written together
    (``killrecords``): this waits for that writer's answer, and writes its own only
    when the writer could not."""
    tracing.annotate({"mosaic.killed": True})
    if running.recorded is not None:
        together = await asyncio.shield(running.recorded)
        if together is not None:
            return together
    try:
        await attempt.tracker.write(killed_move(attempt.tracker, running))
    except MosaicError:
        log.info("kill already recorded elsewhere", extra=attempt.log)
        return False
    return True


def killed_move(tracker: AttemptTracker, running: Running) -> Transition:
    """The ``killed`` record of an agent stopped by the order ``running`` got."""
    order = running.order
    reason = order.reason if order and order.reason else "no reason given"
    return tracker.move(
        agent=AgentState.KILLED,
        task=TaskState.FAILED,
        fields={"completed_at": utcnow(), "error": f"killed: {reason}"},
        detail={
            "reason": reason,
            "requestedBy": order.requested_by if order else None,
            "by": "spawner",
        },
    )


def count_kill(running: Running) -> None:
    """The kill is done (the sandbox gone): its latency from the order, and its count."""
    if running.ordered_at is not None:
        scope = running.scope
        KILL_LATENCY.labels("spawner", "spawner", scope).observe(
            time.monotonic() - running.ordered_at
        )
        KILLS.labels("spawner", "spawner", scope).inc()
