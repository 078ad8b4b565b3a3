"""The spawner's half of the merge queue and of the pre-push gate.

The merge queue (``options.merge = "queue"``), inside the agent's finish check, after
its change passed the pre-commit gates and was committed:

1. wait for its turn in the queue of (repository, base) (``mergequeue.MergeQueue``);
   the agent's record shows its position;
2. gitops rebases the agent branch onto the freshly fetched base in a scratch repository
   it owns (never the agent's); a conflict goes back to the agent (``PushDone.conflicts`` and
   ``base_commit``, the same answer as a push conflict) and it leaves the queue;
3. the gates of its profile run on that integrated tree (phase ``pre-push``); a
   rejection goes back to the agent and the base is untouched;
4. gitops pushes the integrated commit to the base and the agent's head to its branch in
   one atomic, non-forced push; refused because the base moved (another writer), the
   integration is done again, at most ``merge_queue_attempts`` times.

The pre-push gate without the queue: when the head to push integrates a base newer than
the attempt's original base (the agent rebased or merged onto a base that moved), the
gates run again on it with phase ``pre-push`` before the push (``pre_push_check``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.spawner.clients import GitOps
from services.spawner.errors import StepFailedError
from services.spawner.mergequeue import MergeQueue
from shared.messages.agents import AgentPatch
from shared.messages.base import Failure
from shared.messages.gates import GateDecision, GatePhase
from shared.messages.gitops import (
    BaseStatusRequested,
    IntegrateRequested,
    Landed,
    LandRequested,
    PushDone,
)
from shared.tracker import AttemptTracker

log = logging.getLogger(__name__)

GateCheck = Callable[[GatePhase, str, str, str | None], Awaitable[GateDecision]]
"""Runs and records the task's gates: (phase, worktree, base, commit checked) -> decision."""


@dataclass(frozen=True)
class Where:
    """The attempt a merge belongs to (the fields every gitops request carries)."""

    agent_id: str
    task_id: str
    repository: str
    base_branch: str
    attempt: int | None = None
    """The attempt's fencing token: gitops refuses an integration or a landing of an
    attempt older than one it has seen (services/gitops/fencing.py)."""

    def fields(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "task_id": self.task_id,
            "repository": self.repository,
            "base_branch": self.base_branch,
        }

    def fenced(self) -> dict[str, Any]:
        return {**self.fields(), "attempt": self.attempt}


@dataclass(frozen=True)
class MergeResult:
    """How a queued merge ended: landed, a conflict for the agent, or a gate rejection."""

    landed: Landed | None = None
    conflict: PushDone | None = None
    rejected: GateDecision | None = None


async def pre_push_check(
    gitops: GitOps, where: Where, original_base: str | None, worktree: str, check: GateCheck
) -> GateDecision | None:
    """The pre-push gates' decision when the agent's head integrates a newer base than
    the attempt started from; ``None`` when the base it builds on did not change."""
    status = await gitops.base_status(BaseStatusRequested(**where.fields()))
    if status.merge_base is None or original_base is None or status.merge_base == original_base:
        return None
    log.info(
        "head integrates %s (started on %s): pre-push gates",
        status.merge_base[:12],
        original_base[:12],
        extra={"agent_id": where.agent_id, "task_id": where.task_id},
    )
    return await check("pre-push", worktree, status.merge_base, status.head)


async def merge_through_queue(
    gitops: GitOps,
    queue: MergeQueue,
    tracker: AttemptTracker,
    where: Where,
    check: GateCheck,
    attempts: int,
) -> MergeResult:
    """Wait for the queue, integrate, gate, land (see the module doc)."""
    key = queue.queue_key(where.repository, where.base_branch)

    async def show(position: int) -> None:
        await tracker.update(AgentPatch(merge_queue_position=position))
        await tracker.record(
            "progress",
            {"step": "merge_queue", "position": position, "baseBranch": where.base_branch},
        )

    try:
        async with queue.turn(key, where.agent_id, show):
            return await _integrate_and_land(gitops, tracker, where, check, attempts)
    finally:
        await tracker.update(AgentPatch(merge_queue_position=None))


async def _integrate_and_land(
    gitops: GitOps, tracker: AttemptTracker, where: Where, check: GateCheck, attempts: int
) -> MergeResult:
    for attempt in range(1, attempts + 1):
        try:
            integrated = await gitops.integrate(IntegrateRequested(**where.fenced()))
            if integrated.conflicts:
                return MergeResult(
                    conflict=PushDone(
                        conflicts=integrated.conflicts,
                        base_commit=integrated.base_commit,
                        error=integrated.error,
                    )
                )
            commit, onto, head = integrated.commit, integrated.base_commit, integrated.head
            if commit is None or onto is None or head is None or integrated.scratch is None:
                raise StepFailedError(
                    "integrate", Failure(code="internal", message="incomplete integration reply")
                )
            decision = await check("pre-push", integrated.scratch, onto, commit)
            if decision.error is not None:
                raise StepFailedError("gates", decision.error)
            if not decision.approved:
                return MergeResult(rejected=decision)
            landed = await gitops.land(
                LandRequested(**where.fenced(), commit=commit, onto=onto, head=head)
            )
        finally:
            await _discard(gitops, where)
        if landed.moved:
            log.info(
                "the base moved under the landing (attempt %d): integrating again",
                attempt,
                extra={"agent_id": where.agent_id, "task_id": where.task_id},
            )
            continue
        await _record_merge(tracker, where, landed)
        return MergeResult(landed=landed)
    raise StepFailedError(
        "merge",
        Failure(
            code="base_moving",
            message=f"{where.base_branch} moved under each of {attempts} landings",
            retryable=True,
        ),
    )


async def _discard(gitops: GitOps, where: Where) -> None:
    """Remove the scratch repository; a failure is logged, never raised over the real outcome
    (the next integration of this agent removes a stale one first)."""
    try:
        await gitops.integrate(IntegrateRequested(**where.fenced(), discard=True))
    except Exception:
        log.warning(
            "could not remove the merge scratch repository",
            exc_info=True,
            extra={"agent_id": where.agent_id, "task_id": where.task_id},
        )


async def _record_merge(tracker: AttemptTracker, where: Where, landed: Landed) -> None:
    detail: dict[str, Any] = {
        "step": "merged",
        "range": landed.range,
        "commit": landed.commit,
        "baseBranch": where.base_branch,
    }
    await tracker.update(AgentPatch(merged_range=landed.range))
    await tracker.record("progress", detail)
    if landed.error is not None:  # merged, but the audit trail did not take the entry
        await tracker.record("warning", {"merge": landed.error.message})
