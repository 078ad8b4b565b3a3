"""Ending a task whose queue message will not come back: ``failed``, never left pending.

Two ways a message runs out: the spawner holding its last delivery cannot finish it
(a retry or a hand-back it may not send back), or a spawner died holding it and
JetStream gave up (its ``MAX_DELIVERIES`` advisory). Either way the record says why,
next to every attempt's reason.
"""

from __future__ import annotations

import json
import logging

from nats.js import JetStreamContext
from pydantic import ValidationError

from shared import subjects
from shared.errors import IllegalTransitionError, NotFoundError
from shared.messages.agents import AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.tasks import TaskQueued
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)

MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{subjects.TASKS_STREAM}.*"


async def fail_exhausted(
    tracker: AgentTracker, task: TaskQueued, reason: str, fence: int | None = None
) -> bool:
    """Move a task that is not final to ``failed`` with ``reason``; True if it did."""
    record = await tracker.store.get_agent(task.agent_id)
    if record is None:
        return False
    agent = None if record.state == AgentState.FAILED else AgentState.FAILED
    try:
        await tracker.transition(
            task.agent_id,
            task_id=task.request.task_id,
            agent=agent,
            task=TaskState.FAILED,
            fields={"completed_at": utcnow(), "error": reason},
            detail={"error": reason},
            fence=fence,
            append={"attempt_reasons": reason},
        )
    except (IllegalTransitionError, NotFoundError):
        return False  # final already (killed, completed): nothing to end
    log.error("task failed: %s", reason, extra={"agent_id": task.agent_id})
    return True


async def on_max_deliveries(js: JetStreamContext, tracker: AgentTracker, data: bytes) -> None:
    """Handle JetStream's advisory: fail the task, then drop its message from the stream.

    Every spawner hears it; the transition has one winner and deleting twice is harmless.
    """
    try:
        advisory = json.loads(data)
        seq = int(advisory["stream_seq"])
        deliveries = int(advisory.get("deliveries", 0))
    except (ValueError, KeyError, TypeError):
        log.error("unreadable MAX_DELIVERIES advisory: %r", data[:200])
        return
    try:
        stored = await js.get_msg(subjects.TASKS_STREAM, seq)
    except Exception:  # gone already: another spawner handled it
        return
    try:
        task = TaskQueued.from_bytes(stored.data or b"")
    except ValidationError:
        log.error("a task message at seq %d that cannot be read hit max deliveries", seq)
    else:
        reason = f"the queue gave up after {deliveries} deliveries"
        await fail_exhausted(tracker, task, reason)
    try:
        await js.delete_msg(subjects.TASKS_STREAM, seq)
    except Exception:
        log.info("task message %d already deleted", seq)
