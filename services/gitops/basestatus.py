"""Where an agent branch stands against the remote base: the facts the pre-push gate needs.

gitops fetches ``origin/<base>`` and answers the agent branch's tip (the ref gitops
pushes from), the fetched base and their merge base. It decides nothing: the spawner
compares the merge base with the attempt's original base (``WorktreeReady.baseCommit``)
and, when the agent rebased or merged onto a base that moved, runs the gates again
(phase ``pre-push``) before the push.
"""

from __future__ import annotations

from services.gitops.errors import BranchNotFoundError
from services.gitops.repos import RepoCache
from services.gitops.validation import validate_branch
from services.gitops.worktrees import WorktreeRef, locate
from shared.messages.gitops import BaseStatus, BaseStatusRequested


async def base_status(cache: RepoCache, request: BaseStatusRequested) -> BaseStatus:
    """Fetch the base, then report head, base and merge base (read-only otherwise)."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())
    return await cache.run_locked(ref.repository, _status, cache, ref, request.base_branch)


def _status(cache: RepoCache, ref: WorktreeRef, base_branch: str) -> BaseStatus:
    url = ref.repository
    cache.fetch(url, base_branch)
    base_ref = f"refs/remotes/origin/{base_branch}"
    if not cache.has_ref(url, base_ref):
        raise BranchNotFoundError(f"the remote has no branch {base_branch!r}")
    base = cache.rev(url, base_ref)
    head = cache.rev(url, f"refs/heads/{ref.branch}")
    found = cache.runner(url).run("merge-base", head, base, ok=(0, 1))
    return BaseStatus(head=head, base=base, merge_base=found.stdout.strip() or None)
