"""The git half of the merge queue: integrate an agent branch into its base, then land it.

Nothing here touches the agent's own repository; every write goes to the cache or to a
scratch repository only gitops uses:

- ``integrate``: fetch ``origin/<base>``; in a scratch repository made like an agent's
  (``<slug>_worktrees/merge-<agentId>-<taskId>``, owned by gitops) rebase the
  agent branch's commits onto the fetched base (a fast-forward when the branch already
  contains it: nothing is rewritten, merge commits included). A conflict aborts the
  rebase, removes the scratch repository and answers the paths and the fetched base.
  Otherwise the integrated commit stays checked out there for the gates.
- ``land``: after the gates passed on that commit, one atomic, plain (never forced)
  push: ``<commit>:refs/heads/<base>`` and ``<head>:refs/heads/mosaic/agent-<id>``. The
  remote refuses a base that is not a fast-forward, so the base is never half-updated;
  refused because the base moved, the answer is ``moved`` and the caller integrates again.
  Every commit the push adds is secret-scanned first (pushscan.py).

The spawner orders these calls through the queue (one agent per repository and base at a
time) and runs the gates between them; see docs/git.md, "Merge queue".
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from services.gitops.commits import load_allowlist
from services.gitops.errors import (
    BranchNotFoundError,
    GitCommandError,
    InvalidRequestError,
    WorktreeNotFoundError,
)
from services.gitops.pushscan import scan_push
from services.gitops.repos import RepoCache, classify_remote_error
from services.gitops.safety import GitRunner, verify_agent_repo
from services.gitops.validation import validate_branch
from services.gitops.worktrees import WorktreeRef, delete_tree, locate, make_runner
from shared import agentrepo
from shared.agentrepo import AgentRepo
from shared.messages.base import Failure
from shared.messages.gitops import Integrated, IntegrateRequested, Landed, LandRequested

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{40}$")
SCRATCH_PREFIX = "merge-"
"""Scratch repositories are ``merge-<agentId>-<taskId>``; agents' ``agent-…``."""


def scratch_path(cache: RepoCache, ref: WorktreeRef) -> Path:
    """The gitops-owned worktree where ``ref``'s branch is integrated."""
    return cache.worktrees_root(ref.repository) / f"{SCRATCH_PREFIX}{ref.agent_id}-{ref.task_id}"


async def integrate(cache: RepoCache, request: IntegrateRequested) -> Integrated:
    """Rebase the agent branch onto the fresh base in the scratch repository (or, with
    ``discard``, only remove that worktree)."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())
    if request.discard:
        await cache.run_for_agent(
            ref.repository, ref.agent_id, remove_scratch, cache, ref, urgent=True
        )
        return Integrated()
    return await cache.run_for_agent(
        ref.repository, ref.agent_id, _integrate, cache, ref, request.base_branch, urgent=True
    )


def remove_scratch(cache: RepoCache, ref: WorktreeRef) -> None:
    """Remove the scratch repository if there is one (idempotent)."""
    path = scratch_path(cache, ref)
    if path.exists() or path.is_symlink():
        delete_tree(path)


def _open_scratch(
    cache: RepoCache, ref: WorktreeRef, path: Path, *, head: str, base_branch: str, base: str
) -> GitRunner:
    """A repository made like an agent's (``shared.agentrepo.create``, so the gates read
    it as they read an agent's), on ``mosaic/merge-<agentId>`` at ``head``. Only gitops
    ever writes in it, and every object git writes there goes into the cache, so the
    integrated commit is pushed from the cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    agentrepo.create(
        AgentRepo(path, ref.repo),
        branch=f"mosaic/merge-{ref.agent_id}",
        start=head,
        base_branch=base_branch,
        base=base,
        identity=(cache.identity.git_author_name, cache.identity.git_author_email),
        make=make_runner(cache),
    )
    return _scratch_runner(cache, ref, path)


def _scratch_runner(cache: RepoCache, ref: WorktreeRef, path: Path) -> GitRunner:
    repo = AgentRepo(path, ref.repo)
    verify_agent_repo(repo)
    return GitRunner(
        repo.git_dir,
        path,
        timeout=cache.settings.local_timeout,
        env={"GIT_OBJECT_DIRECTORY": str(repo.shared_objects), **cache.identity_env()},
    )


def _integrate(cache: RepoCache, ref: WorktreeRef, base_branch: str) -> Integrated:
    url = ref.repository
    cache.fetch(url, base_branch)
    base_ref = f"refs/remotes/origin/{base_branch}"
    base = cache.commit_of(url, base_ref)
    if base is None:
        raise BranchNotFoundError(f"the remote has no branch {base_branch!r}")
    head = cache.commit_of(url, f"refs/heads/{ref.branch}")
    if head is None:
        raise WorktreeNotFoundError(f"no branch {ref.branch} to integrate (nothing committed)")
    remove_scratch(cache, ref)
    path = scratch_path(cache, ref)
    try:
        runner = _open_scratch(cache, ref, path, head=head, base_branch=base_branch, base=base)
        contains = runner.run("merge-base", "--is-ancestor", base, head, ok=(0, 1)).status == 0
        conflicts = () if contains else _rebase(runner, ref, base)
        commit = runner.out("rev-parse", "HEAD")
    except BaseException:
        remove_scratch(cache, ref)
        raise
    if conflicts:
        remove_scratch(cache, ref)
        log.info("integration conflicts: %s", conflicts, extra=ref.log_extra)
        return conflict_reply(ref, base_branch, base, conflicts)
    log.info(
        "integrated %s onto %s at %s: %s",
        ref.branch,
        base_branch,
        base[:12],
        commit[:12],
        extra=ref.log_extra,
    )
    return Integrated(commit=commit, base_commit=base, head=head, scratch=str(path))


def _rebase(runner: GitRunner, ref: WorktreeRef, base: str) -> tuple[str, ...]:
    """Replay the agent's commits onto ``base``; the conflicting paths (the rebase then
    aborted), or ``()`` when it went through."""
    # rerere off: a resolution recorded earlier must not be replayed silently.
    done = runner.run(
        "-c", "rerere.enabled=false", "rebase", "--quiet", "--no-autosquash", base, ok=(0, 1, 128)
    )
    if done.status == 0:
        return ()
    listing = runner.run("diff", "--name-only", "--diff-filter=U", "-z", ok=(0, 1, 128))
    paths = tuple(dict.fromkeys(p for p in listing.stdout.split("\0") if p))
    runner.run("rebase", "--abort", ok=(0, 1, 128))
    if not paths:
        why = done.stderr.strip()[:500]
        raise GitCommandError(f"rebase of {ref.branch} onto {base[:12]} failed: {why}")
    return paths


def conflict_reply(
    ref: WorktreeRef, base_branch: str, base: str, paths: tuple[str, ...]
) -> Integrated:
    """The ``Integrated`` answer for a conflict: the paths and the base to rebase onto."""
    message = (
        f"{ref.branch} conflicts with origin/{base_branch} ({base[:12]}) in {', '.join(paths)}; "
        f"rebase onto origin/{base_branch}, resolve, then finish again"
    )
    failure = Failure(code="conflict", message=message, paths=paths)
    return Integrated(conflicts=paths, base_commit=base, error=failure)


async def land(cache: RepoCache, request: LandRequested) -> Landed:
    """Push the integrated commit to the base and the agent's head to its branch."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())
    for name, value in (("commit", request.commit), ("onto", request.onto), ("head", request.head)):
        if not _SHA.match(value):
            raise InvalidRequestError(f"{name} must be a full commit id, got {value[:60]!r}")
    return await cache.run_for_agent(
        ref.repository, ref.agent_id, _land, cache, ref, request, urgent=True
    )


def _land(cache: RepoCache, ref: WorktreeRef, request: LandRequested) -> Landed:
    url, base_branch = ref.repository, request.base_branch
    path = scratch_path(cache, ref)
    if not path.is_dir():
        raise WorktreeNotFoundError(f"no integration of {ref.branch} to land: integrate first")
    scratch = _scratch_runner(cache, ref, path)
    if scratch.out("rev-parse", "HEAD") != request.commit:
        raise InvalidRequestError(
            f"the integration of {ref.branch} is at another commit than {request.commit[:12]}"
        )
    runner = cache.runner(url, network=True)
    allowlist = load_allowlist(cache, url, base_branch)
    scanned: set[str] = set()
    scan_push(runner, request.onto, request.commit, allowlist, scanned)
    scan_push(runner, request.onto, request.head, allowlist, scanned)
    refspecs = [f"{request.head}:refs/heads/{ref.branch}"]
    if request.commit != request.onto:
        refspecs.insert(0, f"{request.commit}:refs/heads/{base_branch}")
    result = runner.run("push", "--atomic", "--porcelain", "origin", *refspecs, ok=(0, 1, 128))
    if result.status != 0:
        report = f"{result.stdout}\n{result.stderr}"
        if _base_moved(result.stdout, base_branch):
            log.info("landing refused: %s moved", base_branch, extra=ref.log_extra)
            return Landed(moved=True)
        if "[rejected]" in report or "[remote rejected]" in report:
            raise GitCommandError(f"the remote refused the merge: {report.strip()[:800]}")
        raise classify_remote_error(url, GitCommandError(f"push failed: {report.strip()}"))
    cache.fetch(url, base_branch)
    remove_scratch(cache, ref)
    span = f"{request.onto}..{request.commit}"
    log.info("merged %s into %s: %s", ref.branch, base_branch, span, extra=ref.log_extra)
    return Landed(commit=request.commit, range=span, remote_branch=ref.branch, head=request.head)


def _base_moved(porcelain: str, base_branch: str) -> bool:
    """Whether the push's report says the base ref was refused as not a fast-forward."""
    target = f":refs/heads/{base_branch}\t"
    for line in porcelain.splitlines():
        if target in line and line.startswith("!"):
            return "non-fast-forward" in line or "fetch first" in line
    return False
