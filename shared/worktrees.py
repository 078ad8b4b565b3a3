"""Retiring an agent's worktree: gitops salvages its unpushed work, then removes it.

Two services end an agent: its spawner (every attempt's cleanup) and the killswitch
(an agent whose spawner did not end it, and the reaper's leftovers). Both retire the
worktree the same way and record the same thing, so the step is written here once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.backoff import RetryPolicy
from shared.errors import BusUnavailableError
from shared.messages.agents import AgentPatch
from shared.messages.gitops import WorktreeRemoved, WorktreeRemoveRequested

log = logging.getLogger(__name__)

RemoveWorktree = Callable[[WorktreeRemoveRequested], Awaitable[WorktreeRemoved]]
"""Asks gitops to salvage and remove one worktree (a request over NATS)."""

RETIRE_POLICY = RetryPolicy(
    attempts=2,
    base_s=0.5,
    cap_s=2.0,
    retry_on=lambda exc: isinstance(exc, BusUnavailableError),
)
"""Removal is idempotent (a second ask finds nothing and says so), so a gitops that did
not answer (restarting, say) is asked once more before the reaper's next pass."""


@dataclass(frozen=True)
class Retired:
    """What retiring did: the record's patch and the ``cleanup`` event's detail."""

    patch: AgentPatch
    detail: dict[str, Any]


async def retire_worktree(
    remove: RemoveWorktree, request: WorktreeRemoveRequested
) -> Retired | None:
    """Salvage then remove; ``None`` (logged) when gitops refused or did not answer,
    so the record keeps naming the worktree and the reaper tries again."""
    extra = {"agent_id": request.agent_id, "task_id": request.task_id}
    try:
        removed = await RETIRE_POLICY.run(lambda: remove(request), what="worktree removal")
    except Exception as exc:
        log.warning("worktree removal failed (%s); the reaper retries", exc, extra=extra)
        return None
    if removed.error is not None:
        log.warning("worktree removal refused: %s", removed.error.message, extra=extra)
        return None
    detail: dict[str, Any] = {"worktree": "removed" if removed.removed else "absent"}
    if removed.salvage_branch:
        detail["salvageBranch"] = removed.salvage_branch
        return Retired(AgentPatch(worktree=None, salvage_branch=removed.salvage_branch), detail)
    return Retired(AgentPatch(worktree=None), detail)
