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
from redis.exceptions import RedisError

from services.spawner.clients import GitOps
from shared import subjects
from shared.errors import IllegalTransitionError, MosaicError, NotFoundError
from shared.messages.agents import AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.gitops import WorktreeRemoveRequested
from shared.messages.tasks import TaskQueued
from shared.tracker import AgentTracker
from shared.worktrees import retire_worktree

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


async def remove_leftovers(gitops: GitOps, tracker: AgentTracker, task: TaskQueued) -> None:
    """Remove (salvaging first) the repository a crashed attempt left, for a task ended
    here without a run of its own: no run's cleanup will, and the record names no
    worktree for the reaper when the attempt died before it said it was running."""
    request = task.request
    try:
        record = await tracker.store.get_agent(task.agent_id)
    except (MosaicError, RedisError):
        record = None
    if record is not None and record.host:  # the crashed attempt's host has its worktree
        gitops = gitops.at(record.host)
    retired = await retire_worktree(
        gitops.remove_worktree,
        WorktreeRemoveRequested(
            agent_id=task.agent_id,
            task_id=request.task_id,
            repository=request.context.repository,
            base_branch=request.context.branch,
        ),
    )
    if retired is None:  # logged: the reaper finds it if the record names the worktree
        return
    try:
        await tracker.store.update(task.agent_id, retired.patch)
    except MosaicError:
        log.warning("could not record the removal of what the crashed attempt left",
                    exc_info=True, extra={"agent_id": task.agent_id})  # fmt: skip


async def on_max_deliveries(
    js: JetStreamContext, tracker: AgentTracker, data: bytes, gitops: GitOps
) -> None:
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
        if await fail_exhausted(tracker, task, reason):
            await remove_leftovers(gitops, tracker, task)
    try:
        await js.delete_msg(subjects.TASKS_STREAM, seq)
    except Exception:
        log.info("task message %d already deleted", seq)
