"""Committing what an agent left uncommitted, in the cache: import, stage, scan, commit.

The agent's branch is imported into the cache's ``mosaic/agent-<id>`` first (its own
commits, rebases and merges are kept), then its files are staged in a scratch index
through ``shared.agentrepo.files_view`` (the cache's git dir; nothing is written into
the agent's repository) and committed on top with ``commit-tree``, as the configured
agent identity. The scan runs on the staged diff before the commit object exists; a hit
blocks. YOLO mode skips quality gates elsewhere, never this scan. The spawner then
moves the agent's branch to the new commit inside its sandbox (``git reset --mixed``).
"""

from __future__ import annotations

import asyncio
import logging

from services.gitops.errors import InvalidRequestError, SecretFoundError
from services.gitops.repos import RepoCache
from services.gitops.safety import refuse_nested_repositories
from services.gitops.secrets import ALLOWLIST_PATH, Allowlist, Finding, scan_diff, scan_text
from services.gitops.validation import validate_branch
from services.gitops.worktrees import WorktreeRef, locate, make_runner, sync_branch
from shared.agentrepo import files_view
from shared.messages.gitops import CommitMade, CommitRequested

log = logging.getLogger(__name__)

# Explicit prefixes and no drivers: the diff we scan is exactly what git stores.
_STAGED_DIFF = (
    "diff",
    "--cached",
    "--text",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",
    "--unified=0",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


def load_allowlist(cache: RepoCache, repository: str, base_branch: str) -> Allowlist:
    """The allowlist as the remote base branch has it (agents cannot widen it)."""
    runner = cache.runner(repository)
    result = runner.run(
        "cat-file", "blob", f"refs/remotes/origin/{base_branch}:{ALLOWLIST_PATH}", ok=(0, 128)
    )
    return Allowlist.parse(result.stdout) if result.status == 0 else Allowlist()


async def commit(cache: RepoCache, request: CommitRequested) -> CommitMade:
    """Commit everything in the agent's worktree, unless the secret scan objects."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())
    if not request.message.strip():
        raise InvalidRequestError("a commit message is required")
    if request.yolo:
        log.info("yolo commit: the secret scan still runs", extra=ref.log_extra)
    # One commit at a time per worktree; commits in different worktrees run in parallel.
    async with cache.worktree_lock(ref.path):
        return await asyncio.to_thread(_commit, cache, ref, request)


def _commit(cache: RepoCache, ref: WorktreeRef, request: CommitRequested) -> CommitMade:
    head = sync_branch(cache, ref)
    assert head is not None
    with files_view(ref.agent_repo, head, make_runner(cache), into_cache=True) as view:
        refuse_nested_repositories(view, head)  # before add (index: head): never run a git in one
        view.run("add", "-A")
        refuse_nested_repositories(view)  # added just now: never commit an agent's repository
        if view.run("diff-index", "--cached", "--quiet", head, ok=(0, 1)).status == 0:
            return CommitMade(nothing_to_commit=True, head=head)
        findings = scan_diff(
            view.out(*_STAGED_DIFF, head),
            load_allowlist(cache, ref.repository, request.base_branch),
        )
        findings += scan_text("<commit message>", request.message)
        if findings:
            raise _blocked(findings)
        tree = view.out("write-tree")
    runner = cache.runner(ref.repository)
    sha = runner.run(
        "commit-tree", tree, "-p", head, "-m", request.message, env=cache.identity_env()
    ).stdout.strip()
    runner.run("update-ref", f"refs/heads/{ref.branch}", sha, head)
    log.info("committed %s on %s", sha[:12], ref.branch, extra=ref.log_extra)
    return CommitMade(commit=sha, head=sha)


def _blocked(findings: list[Finding]) -> SecretFoundError:
    shown = ", ".join(str(finding) for finding in findings[:20])
    more = f" and {len(findings) - 20} more" if len(findings) > 20 else ""
    return SecretFoundError(
        f"commit blocked: possible secrets at {shown}{more}. Remove them (use environment "
        f"variables or a secret store), or list a false positive in {ALLOWLIST_PATH} "
        "on the base branch",
        tuple((finding.path, finding.line, finding.rule) for finding in findings),
    )
