"""Conflict detection before push, and the push itself.

``git merge-tree --write-tree`` merges the cache's agent branch (gitops' commit step
imported the agent's branch into it) with the freshly fetched remote base inside the
cache's object store only: the agent's repository is never touched. On conflict the
agent gets the paths and the base commit (``ConflictError.base_commit``, which the
spawner makes the agent's ``origin/<base>``), rebases or merges and tries again. Every commit
the push would add is secret-scanned first (pushscan.py). A push rejected as
non-fast-forward is re-checked and retried, never forced.
"""

from __future__ import annotations

import logging

from services.gitops.commits import load_allowlist
from services.gitops.errors import (
    BranchNotFoundError,
    ConflictError,
    GitCommandError,
    PushRejectedError,
)
from services.gitops.pushscan import scan_push
from services.gitops.repos import RepoCache, classify_remote_error
from services.gitops.safety import GitRunner
from services.gitops.validation import validate_branch
from services.gitops.worktrees import WorktreeRef, locate, open_agent_repo
from shared.messages.gitops import PushDone, PushRequested

log = logging.getLogger(__name__)


def find_conflicts(runner: GitRunner, base: str, head: str) -> tuple[str, ...]:
    """Paths that would conflict if ``head`` were merged into ``base`` (empty if none)."""
    result = runner.run(
        "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", base, head, ok=(0, 1)
    )
    if result.status == 0:
        return ()
    # Output: the merged tree id, then one NUL-terminated path per conflicted file.
    names = result.stdout.split("\0")[1:]
    return tuple(dict.fromkeys(name for name in names if name))


async def push(cache: RepoCache, request: PushRequested) -> PushDone:
    """Fetch, check the agent branch merges cleanly into the base, push it."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())
    return await cache.run_for_agent(
        ref.repository, ref.agent_id, _push, cache, ref, request.base_branch, urgent=True
    )


def _push(cache: RepoCache, ref: WorktreeRef, base_branch: str) -> PushDone:
    open_agent_repo(cache, ref)  # refuses a missing or tampered agent repository
    url = ref.repository
    runner = cache.runner(url, network=True)
    head = cache.rev(url, f"refs/heads/{ref.branch}")
    base_ref = f"refs/remotes/origin/{base_branch}"
    refspec = f"refs/heads/{ref.branch}:refs/heads/{ref.branch}"
    allowlist = load_allowlist(cache, url, base_branch)
    scanned: set[str] = set()
    for attempt in range(1, cache.settings.push_attempts + 1):
        cache.fetch(url, base_branch)
        if not cache.has_ref(url, base_ref):
            raise BranchNotFoundError(f"the remote has no branch {base_branch!r}")
        conflicts = find_conflicts(runner, base_ref, head)
        if conflicts:
            log.info("conflicts with %s: %s", base_branch, conflicts, extra=ref.log_extra)
            raise ConflictError(
                f"{ref.branch} conflicts with origin/{base_branch} in {', '.join(conflicts)}; "
                f"rebase onto or merge origin/{base_branch}, resolve, commit, push again",
                paths=conflicts,
                base_commit=cache.rev(url, base_ref),
            )
        scan_push(runner, base_ref, head, allowlist, scanned)
        result = runner.run("push", "--porcelain", "origin", refspec, ok=(0, 1, 128))
        if result.status == 0:
            log.info("pushed %s at %s", ref.branch, head[:12], extra=ref.log_extra)
            return PushDone(remote_branch=ref.branch, commit=head)
        report = f"{result.stdout}\n{result.stderr}"
        if "[rejected]" not in report and "non-fast-forward" not in report:
            raise classify_remote_error(url, GitCommandError(f"push failed: {report.strip()}"))
        log.info("push of %s rejected (attempt %d)", ref.branch, attempt, extra=ref.log_extra)
    raise PushRejectedError(
        f"the remote keeps rejecting {ref.branch} as not a fast-forward; merge "
        f"origin/{ref.branch} into it (it is never force-pushed) and push again"
    )
