"""Agent worktrees: ``<repo>_worktrees/agent-<agentId>-<taskId>`` on ``mosaic/agent-<agentId>``.

Every path is derived from (repository, agent id, task id), so any gitops instance can
serve any request. Creation and removal hold the repository lock (see repos.py).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from services.gitops.errors import (
    BranchInUseError,
    BranchNotFoundError,
    GitOpsError,
    WorktreeClashError,
    WorktreeNotFoundError,
    WorktreeTamperedError,
)
from services.gitops.repos import RepoCache
from services.gitops.safety import (
    GitRunner,
    refuse_nested_repositories,
    verify_worktree,
    worktree_admin_dir,
)
from services.gitops.salvage import salvage
from services.gitops.validation import validate_branch, validate_id, validate_repository
from shared.messages.gitops import (
    WorktreeReady,
    WorktreeRemoved,
    WorktreeRemoveRequested,
    WorktreeRequested,
)

log = logging.getLogger(__name__)


def agent_branch(agent_id: str) -> str:
    """The branch an agent works on (locally and on the remote)."""
    return f"mosaic/agent-{agent_id}"


@dataclass(frozen=True)
class WorktreeRef:
    """Where one agent's worktree for one task lives."""

    repository: str
    repo: Path
    path: Path
    branch: str
    agent_id: str
    task_id: str

    @property
    def log_extra(self) -> dict[str, str]:
        return {"agent_id": self.agent_id, "task_id": self.task_id}


@dataclass(frozen=True)
class WorktreeInfo:
    """One entry of ``git worktree list``."""

    path: Path
    branch: str | None
    head: str | None
    prunable: bool


def locate(cache: RepoCache, repository: str, agent_id: str, task_id: str) -> WorktreeRef:
    """Validate the ids and the repository and derive the worktree's path and branch."""
    url = validate_repository(repository)
    validate_id("agent id", agent_id)
    validate_id("task id", task_id)
    path = cache.worktrees_root(url) / f"agent-{agent_id}-{task_id}"
    return WorktreeRef(url, cache.repo_path(url), path, agent_branch(agent_id), agent_id, task_id)


def worktree_runner(cache: RepoCache, ref: WorktreeRef, admin: Path) -> GitRunner:
    """A runner on the worktree that names our admin dir and index explicitly."""
    return GitRunner(
        admin,
        ref.path,
        timeout=cache.settings.local_timeout,
        env={"GIT_INDEX_FILE": str(admin / "index")},
    )


def open_worktree(cache: RepoCache, ref: WorktreeRef) -> GitRunner:
    """A runner on an existing, untampered worktree that is on the agent branch."""
    if not (ref.repo / "HEAD").is_file() or not ref.path.is_dir():
        raise WorktreeNotFoundError(f"no worktree for agent {ref.agent_id}, task {ref.task_id}")
    admin = verify_worktree(ref.repo, ref.path)
    runner = worktree_runner(cache, ref, admin)
    head = runner.run("symbolic-ref", "--quiet", "HEAD", ok=(0, 1)).stdout.strip()
    if head != f"refs/heads/{ref.branch}":
        raise GitOpsError(
            f"worktree is not on {ref.branch} (HEAD is {head or 'detached'}); "
            "finish the rebase or check the branch out again",
            code="wrong_branch",
        )
    refuse_nested_repositories(runner)
    return runner


def list_worktrees_sync(runner: GitRunner) -> list[WorktreeInfo]:
    """Parse ``git worktree list --porcelain -z`` (the bare cache itself is left out)."""
    out = runner.out("worktree", "list", "--porcelain", "-z")
    found: list[WorktreeInfo] = []
    for block in out.split("\0\0"):
        fields = [field for field in block.split("\0") if field]
        attrs = dict(field.partition(" ")[::2] for field in fields)
        if "worktree" not in attrs or "bare" in attrs:
            continue
        branch = attrs.get("branch", "").removeprefix("refs/heads/") or None
        found.append(
            WorktreeInfo(Path(attrs["worktree"]), branch, attrs.get("HEAD"), "prunable" in attrs)
        )
    return found


async def list_worktrees(cache: RepoCache, repository: str) -> list[WorktreeInfo]:
    """Every agent worktree of ``repository`` (an empty list when it is not cached)."""
    url = validate_repository(repository)
    if not (cache.repo_path(url) / "HEAD").is_file():
        return []
    return await cache.run_locked(url, list_worktrees_sync, cache.runner(url))


async def prune_worktrees(cache: RepoCache, repository: str) -> None:
    """Forget worktrees whose directories are gone (their branches stay)."""
    url = validate_repository(repository)
    if (cache.repo_path(url) / "HEAD").is_file():
        await cache.run_locked(url, cache.runner(url).run, "worktree", "prune")


async def create_worktree(cache: RepoCache, request: WorktreeRequested) -> WorktreeReady:
    """Make (or reuse, for the same agent and task) the agent's worktree."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())
    return await cache.run_locked(ref.repository, _create, cache, ref, request.base_branch)


def _create(cache: RepoCache, ref: WorktreeRef, base_branch: str) -> WorktreeReady:
    cache.ensure(ref.repository, base_branch)
    runner = cache.runner(ref.repository)
    base_ref = f"refs/remotes/origin/{base_branch}"
    if not cache.has_ref(ref.repository, base_ref):
        cache.fetch(ref.repository, base_branch)  # ensure may have skipped a recent fetch
        if not cache.has_ref(ref.repository, base_ref):
            raise BranchNotFoundError(f"the remote has no branch {base_branch!r}")
    runner.run("worktree", "prune")
    worktrees = list_worktrees_sync(runner)
    mine = next((wt for wt in worktrees if _same(wt.path, ref.path)), None)
    if mine is not None:
        if mine.branch != ref.branch:
            raise WorktreeClashError(
                f"{ref.path.name} is already the worktree of branch {mine.branch}, "
                f"not {ref.branch}: another agent's worktree has this name"
            )
        verify_worktree(ref.repo, ref.path)
        log.info("reusing worktree %s", ref.path, extra=ref.log_extra)
        return _ready(runner, ref, base_ref, reused=True)
    if ref.path.exists() or ref.path.is_symlink():
        if ref.path.is_dir() and not ref.path.is_symlink() and not any(ref.path.iterdir()):
            ref.path.rmdir()
        else:
            raise WorktreeClashError(f"{ref.path} exists and is not a worktree of this repository")
    holder = next((wt for wt in worktrees if wt.branch == ref.branch), None)
    if holder is not None:
        raise BranchInUseError(f"{ref.branch} is checked out in {holder.path.name}")
    branch_existed = cache.has_ref(ref.repository, f"refs/heads/{ref.branch}")
    ref.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if branch_existed:
            runner.run("worktree", "add", "--quiet", str(ref.path), ref.branch)
        else:
            runner.run(
                "worktree",
                "add",
                "--quiet",
                "--no-track",
                "-b",
                ref.branch,
                str(ref.path),
                base_ref,
            )
    except GitOpsError:
        _undo_create(runner, ref, delete_branch=not branch_existed)
        raise
    log.info("created worktree %s on %s", ref.path, ref.branch, extra=ref.log_extra)
    return _ready(runner, ref, base_ref, reused=False)


def _ready(runner: GitRunner, ref: WorktreeRef, base_ref: str, *, reused: bool) -> WorktreeReady:
    base = runner.out("merge-base", f"refs/heads/{ref.branch}", base_ref)
    return WorktreeReady(
        path=str(ref.path),
        branch=ref.branch,
        repo_path=str(ref.repo),
        base_commit=base,
        reused=reused,
    )


def _undo_create(runner: GitRunner, ref: WorktreeRef, *, delete_branch: bool) -> None:
    runner.run("worktree", "remove", "--force", "--force", str(ref.path), ok=(0, 128))
    shutil.rmtree(ref.path, ignore_errors=True)
    runner.run("worktree", "prune", ok=(0, 128))
    if delete_branch:
        runner.run("branch", "-D", ref.branch, ok=(0, 1))


def _same(a: Path, b: Path) -> bool:
    return a == b or a.resolve() == b.resolve()


async def remove_worktree(cache: RepoCache, request: WorktreeRemoveRequested) -> WorktreeRemoved:
    """Salvage unpushed work to ``mosaic/salvage/<agentId>``, then remove the worktree."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    if not (ref.repo / "HEAD").is_file():
        return WorktreeRemoved(removed=False)
    return await cache.run_locked(ref.repository, _remove, cache, ref, urgent=True)


def _remove(cache: RepoCache, ref: WorktreeRef) -> WorktreeRemoved:
    runner = cache.runner(ref.repository)
    worktrees = list_worktrees_sync(runner)
    mine = next((wt for wt in worktrees if _same(wt.path, ref.path)), None)
    if mine is not None and mine.branch not in (None, ref.branch):
        raise WorktreeClashError(f"{ref.path.name} belongs to branch {mine.branch}, not ours")
    holder = next((wt for wt in worktrees if wt.branch == ref.branch and wt is not mine), None)
    admin = worktree_admin_dir(ref.repo, ref.path) if mine is not None else None
    wt_runner = None
    tampered = False
    if admin is not None and ref.path.is_dir():
        try:
            verify_worktree(ref.repo, ref.path)
        except WorktreeTamperedError as exc:
            # Removal goes on: every command names our admin dir, never the agent's .git.
            log.warning("removing a tampered worktree: %s", exc, extra=ref.log_extra)
            tampered = True
        wt_runner = worktree_runner(cache, ref, admin)
    salvage_branch = None
    if holder is None:
        salvage_branch = salvage(cache, runner, wt_runner, ref.branch, ref.agent_id, ref.task_id)
    removed = False
    if mine is not None:
        if tampered:
            # git refuses to remove a worktree whose .git does not point back; work is
            # salvaged already, so delete the directory and let prune forget it.
            shutil.rmtree(ref.path)
        elif ref.path.is_dir():
            runner.run("worktree", "remove", "--force", "--force", str(ref.path))
        removed = True
    elif ref.path.exists():
        # Not a worktree of ours, yet in our directory: keep it aside rather than delete it.
        aside = ref.path.parent / ".orphaned" / f"{ref.path.name}-{int(time.time())}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        ref.path.rename(aside)
        log.warning("moved stray %s to %s", ref.path, aside, extra=ref.log_extra)
        removed = True
    runner.run("worktree", "prune")
    if holder is None and cache.has_ref(ref.repository, f"refs/heads/{ref.branch}"):
        runner.run("branch", "-D", ref.branch)
    log.info("removed worktree %s (salvage: %s)", ref.path, salvage_branch, extra=ref.log_extra)
    return WorktreeRemoved(removed=removed, salvage_branch=salvage_branch)
