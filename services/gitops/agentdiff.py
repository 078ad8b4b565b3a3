"""An agent's diff against its base, for people reading the agent's page.

While the agent's repository exists it is read as it is (uncommitted and untracked work
included) through ``shared.agentrepo.files_view``, which writes nothing anywhere; once it
is gone, the commit the agent pushed is read from the cache (the push went out from
there). Either way the base is where the work forked from ``origin/<base>``. The patch
is masked with the secret rules (a workspace has not been through the push-time scan)
and cut at ``DIFF_MAX_BYTES``; binary files are named, never dumped (no ``--binary``).
"""

from __future__ import annotations

import asyncio

from services.gitops.changes import DIFF_ARGS, merge_base, parse_numstat
from services.gitops.errors import GitOpsError, WorktreeNotFoundError
from services.gitops.repos import RepoCache
from services.gitops.validation import validate_branch, validate_repository
from services.gitops.worktrees import locate, make_runner, open_agent_repo
from shared import agentrepo, secrets_rules
from shared.git import Git, refuse_nested_repositories
from shared.messages.diffs import (
    DIFF_MAX_BYTES,
    DIFF_MAX_FILES,
    DiffFile,
    DiffFound,
    DiffRequested,
)


class NothingToDiffError(GitOpsError):
    """The agent has no repository any more and never pushed: there is no diff."""

    code = "not_found"


async def agent_diff(cache: RepoCache, request: DiffRequested) -> DiffFound:
    """The workspace's diff while it exists, else the pushed commit's, else ``not_found``."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())
    base_ref = f"refs/remotes/origin/{request.base_branch}"

    def read_workspace() -> DiffFound:
        repo = open_agent_repo(cache, ref)
        make = make_runner(cache)
        head = agentrepo.resolve(agentrepo.reader(repo, make), "HEAD")
        if head is None:
            raise WorktreeNotFoundError(f"agent {ref.agent_id} has no commit checked out")
        with agentrepo.files_view(repo, head, make) as view:
            refuse_nested_repositories(view, head)  # never start a git in one
            base = merge_base(view, head, base_ref)
            refuse_nested_repositories(view)
            tree = agentrepo.snapshot_tree(view)
            return _diff(view, "workspace", base, tree, head)

    def read_pushed(commit: str) -> DiffFound:
        runner = cache.runner(validate_repository(request.repository))
        if not (ref.repo / "HEAD").is_file() or not cache.has_ref(ref.repository, commit):
            raise NothingToDiffError(
                f"agent {ref.agent_id}'s pushed commit {commit[:12]} is not in gitops' cache"
            )
        since = request.merged_from or base_ref
        if request.merged_from is not None and not cache.has_ref(ref.repository, since):
            since = base_ref
        return _diff(runner, "pushed", merge_base(runner, commit, since), commit, commit)

    if ref.path.is_dir():
        try:
            async with cache.worktree_lock(ref.path):
                return await asyncio.to_thread(read_workspace)
        except WorktreeNotFoundError:
            if request.pushed_commit is None:
                raise
    if request.pushed_commit is None:
        raise NothingToDiffError(
            f"agent {ref.agent_id} has no repository any more and pushed nothing"
        )
    return await asyncio.to_thread(read_pushed, request.pushed_commit)


def _diff(runner: Git, source: str, base: str, target: str, head: str) -> DiffFound:
    entries = parse_numstat(runner.run(*DIFF_ARGS, "--numstat", "-z", base, target, "--").raw)
    files = tuple(
        DiffFile(
            path=entry.paths[-1],
            old_path=entry.paths[0] if len(entry.paths) > 1 else None,
            added=entry.added,
            deleted=entry.deleted,
            binary=entry.binary,
        )
        for entry in entries[:DIFF_MAX_FILES]
    )
    raw = runner.run(*DIFF_ARGS, base, target, "--").raw if entries else b""
    truncated = len(entries) > DIFF_MAX_FILES or len(raw) > DIFF_MAX_BYTES
    patch = secrets_rules.redact(raw[:DIFF_MAX_BYTES].decode("utf-8", "replace"))
    return DiffFound.model_validate(
        {
            "source": source,
            "base_commit": base,
            "head_commit": head,
            "files": files,
            "patch": patch,
            "truncated": truncated,
        }
    )
