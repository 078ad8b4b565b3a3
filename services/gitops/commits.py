"""Committing an agent's worktree: stage everything, scan what is added, then commit.

The scan runs on the staged diff before the commit object exists; a hit unstages and
blocks. YOLO mode skips quality gates elsewhere, never this scan.
"""

from __future__ import annotations

import asyncio
import logging

from services.gitops.errors import (
    GitOpsError,
    InvalidRequestError,
    SecretFoundError,
    WorktreeTamperedError,
)
from services.gitops.repos import RepoCache
from services.gitops.safety import GitRunner, refuse_nested_repositories
from services.gitops.secrets import ALLOWLIST_PATH, Allowlist, Finding, scan_diff, scan_text
from services.gitops.validation import validate_branch
from services.gitops.worktrees import WorktreeRef, locate, open_worktree
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
    runner = open_worktree(cache, ref)
    runner.run("add", "-A")
    try:  # added just now: never commit an agent's repository
        refuse_nested_repositories(runner)
    except WorktreeTamperedError:
        _unstage(runner)
        raise
    if runner.run("diff", "--cached", "--quiet", ok=(0, 1)).status == 0:
        return CommitMade(nothing_to_commit=True, head=runner.out("rev-parse", "HEAD"))
    findings = scan_diff(
        runner.out(*_STAGED_DIFF), load_allowlist(cache, ref.repository, request.base_branch)
    )
    findings += scan_text("<commit message>", request.message)
    if findings:
        _unstage(runner)
        raise _blocked(findings)
    runner.run("commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", request.message,
               env=cache.identity_env())  # fmt: skip
    sha = runner.out("rev-parse", "HEAD")
    log.info("committed %s on %s", sha[:12], ref.branch, extra=ref.log_extra)
    return CommitMade(commit=sha, head=sha)


def _unstage(runner: GitRunner) -> None:
    try:
        runner.run("reset", "--quiet", "HEAD", "--", ".", ok=(0, 1))
    except GitOpsError:
        log.warning("could not unstage after a blocked commit")


def _blocked(findings: list[Finding]) -> SecretFoundError:
    shown = ", ".join(str(finding) for finding in findings[:20])
    more = f" and {len(findings) - 20} more" if len(findings) > 20 else ""
    return SecretFoundError(
        f"commit blocked: possible secrets at {shown}{more}. Remove them (use environment "
        f"variables or a secret store), or list a false positive in {ALLOWLIST_PATH} "
        "on the base branch",
        tuple((finding.path, finding.line, finding.rule) for finding in findings),
    )
