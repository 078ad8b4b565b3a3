"""Where an agent branch stands against the base: the facts the pre-push gate needs.

gitops answers the agent branch's tip (the ref gitops pushes from), the cache's
``origin/<base>`` and their merge base. It decides nothing: the spawner compares the
merge base with the attempt's original base (``WorktreeReady.baseCommit``) and, when the
agent rebased or merged onto a base that moved, runs the gates again (phase
``pre-push``) before the push.

No fetch: any base the agent can have rebased onto came from this cache (fetched for a
conflict, then handed to the agent), so the cache's ``origin/<base>`` is at least that
new, and the merge base is the same whether or not the remote moved again since. The
push fetches anyway; a second fetch per finish would cost every agent a network round
trip under the repository lock. Reads only, so it does not take that lock.
"""

from __future__ import annotations

import asyncio

from services.gitops.errors import BranchNotFoundError, WorktreeNotFoundError
from services.gitops.repos import RepoCache
from services.gitops.validation import validate_branch
from services.gitops.worktrees import WorktreeRef, locate
from shared.messages.gitops import BaseStatus, BaseStatusRequested


async def base_status(cache: RepoCache, request: BaseStatusRequested) -> BaseStatus:
    """Head, base and merge base of the agent branch (read-only)."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())
    return await asyncio.to_thread(_status, cache, ref, request.base_branch)


def _status(cache: RepoCache, ref: WorktreeRef, base_branch: str) -> BaseStatus:
    url = ref.repository
    if not (ref.repo / "HEAD").is_file():
        raise WorktreeNotFoundError(f"no repository cache for {ref.repository}")
    base_ref = f"refs/remotes/origin/{base_branch}"
    base = cache.commit_of(url, base_ref)
    if base is None:
        raise BranchNotFoundError(f"the remote has no branch {base_branch!r}")
    head = cache.rev(url, f"refs/heads/{ref.branch}")
    found = cache.runner(url).run("merge-base", head, base, ok=(0, 1))
    return BaseStatus(head=head, base=base, merge_base=found.stdout.strip() or None)
