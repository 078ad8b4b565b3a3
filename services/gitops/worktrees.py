"""Agent repositories: ``<repo>_worktrees/agent-<agentId>-<taskId>`` on ``mosaic/agent-<agentId>``.

Each agent gets its own repository there (``shared.agentrepo``: a real ``.git`` that
borrows the cache's objects through alternates), so git works inside its sandbox. The
cache keeps ``refs/heads/mosaic/agent-<id>``, the branch gitops pushes from: the agent's
branch is imported into it (``sync_branch``) before anything is committed or pushed,
and nothing on the host ever writes into the agent's repository after ``create``.

Every path is derived from (repository, agent id, task id), so any gitops instance can
serve any request. Creation and removal hold the agent's lock (see repos.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
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
from services.gitops.safety import runner_factory, verify_agent_repo
from services.gitops.salvage import salvage
from services.gitops.validation import validate_branch, validate_id, validate_repository
from shared import agentrepo
from shared.agentrepo import AgentRepo, GitFactory
from shared.messages.gitops import (
    WorktreeReady,
    WorktreeRemoved,
    WorktreeRemoveRequested,
    WorktreeRequested,
)

log = logging.getLogger(__name__)


def agent_branch(agent_id: str) -> str:
    """The branch an agent works on (in its repository, the cache and the remote)."""
    return f"{agentrepo.AGENT_BRANCH_PREFIX}{agent_id}"


@dataclass(frozen=True)
class WorktreeRef:
    """Where one agent's repository for one task lives."""

    repository: str
    repo: Path
    path: Path
    branch: str
    agent_id: str
    task_id: str

    @property
    def log_extra(self) -> dict[str, str]:
        return {"agent_id": self.agent_id, "task_id": self.task_id}

    @property
    def agent_repo(self) -> AgentRepo:
        return AgentRepo(self.path, self.repo)


@dataclass(frozen=True)
class WorktreeInfo:
    """One agent repository in a cache's worktree directory."""

    path: Path
    branch: str | None
    head: str | None
    prunable: bool


def locate(cache: RepoCache, repository: str, agent_id: str, task_id: str) -> WorktreeRef:
    """Validate the ids and the repository and derive the repository's path and branch."""
    url = validate_repository(repository)
    validate_id("agent id", agent_id)
    validate_id("task id", task_id)
    path = cache.worktrees_root(url) / agentrepo.directory_name(agent_id, task_id)
    return WorktreeRef(url, cache.repo_path(url), path, agent_branch(agent_id), agent_id, task_id)


def make_runner(cache: RepoCache) -> GitFactory:
    """gitops' runners for ``shared.agentrepo`` (the operator's environment, its errors)."""
    return runner_factory(cache.settings.local_timeout)


def open_agent_repo(cache: RepoCache, ref: WorktreeRef) -> AgentRepo:
    """The agent's repository, once its structure is what gitops made."""
    if not (ref.repo / "HEAD").is_file() or not ref.path.is_dir():
        raise WorktreeNotFoundError(f"no worktree for agent {ref.agent_id}, task {ref.task_id}")
    repo = ref.agent_repo
    verify_agent_repo(repo)
    return repo


def require_on_branch(ref: WorktreeRef) -> None:
    """Raise ``wrong_branch`` (told to the agent) unless HEAD is on the agent's branch."""
    on = agentrepo.head_branch(ref.agent_repo)
    if on != ref.branch:
        raise GitOpsError(
            f"your repository is not on {ref.branch} (HEAD is "
            f"{'refs/heads/' + on if on else 'detached'}); finish the rebase or merge "
            f"(git status shows where it stands) or check {ref.branch} out again",
            code="wrong_branch",
        )


def cached_tip(cache: RepoCache, ref: WorktreeRef) -> str | None:
    """The commit of the agent's branch in the cache (its lock held: it cannot move)."""
    return cache.commit_of(ref.repository, f"refs/heads/{ref.branch}")


def import_commit(cache: RepoCache, ref: WorktreeRef, sha: str, tip: str | None) -> None:
    """Copy the objects ``sha`` needs from the agent's repository into the cache; ``tip``
    is ``cached_tip``: when it is ``sha``, the cache has them all already (an unchanged
    agent's every commit check and removal used to walk and verify its objects again).

    git runs on the CACHE (its config, our options) and only reads the agent's object
    directory, through ``GIT_ALTERNATE_OBJECT_DIRECTORIES``: no git process ever runs
    with the agent's repository as its own for this.
    """
    if sha == tip:
        return
    runner = cache.runner(ref.repository)
    env = {"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(ref.agent_repo.own_objects.absolute())}
    known = _known_refs(ref, tip)
    listing = runner.run("rev-list", "--objects", sha, "--not", *known, env=env).raw
    if listing.strip():
        pack = ref.repo / "objects" / "pack" / "pack"
        runner.run("pack-objects", "--quiet", str(pack), env=env, stdin=listing)
    # without the agent's objects now: fails if the cache still lacks any of them
    runner.run("rev-list", "--objects", "--quiet", sha, "--not", *known)


def _known_refs(ref: WorktreeRef, tip: str | None) -> list[str]:
    """What the cache surely has, as ``rev-list`` arguments: every ref but the other
    agents' branches, and this agent's own. Other agents' branches come and go while the
    walk runs, and one deleted mid-walk failed it (``fatal: bad object
    refs/heads/mosaic/agent-…``: one commit of 200 in a load test); the agent's own
    branch cannot move meanwhile (its lock is held)."""
    mine = [tip] if tip is not None else []
    return [*mine, "--exclude=refs/heads/mosaic/*", "--all"]


def agent_head(cache: RepoCache, ref: WorktreeRef, name: str) -> str | None:
    """The commit ``name`` (``HEAD``, a branch ref) names in the agent's repository,
    read through the safe runner (call ``open_agent_repo`` first)."""
    return agentrepo.resolve(agentrepo.reader(ref.agent_repo, make_runner(cache)), name)


def sync_branch(cache: RepoCache, ref: WorktreeRef) -> str | None:
    """Make the cache's agent branch what the agent's is (forced: the agent may have
    rebased); return its tip. The agent must be on its branch (``require_on_branch``)."""
    open_agent_repo(cache, ref)
    require_on_branch(ref)
    sha = agent_head(cache, ref, f"refs/heads/{ref.branch}")
    if sha is None:
        raise GitOpsError(
            f"{ref.branch} has no commit in your repository; check it out again",
            code="wrong_branch",
        )
    tip = cached_tip(cache, ref)
    if sha != tip:
        import_commit(cache, ref, sha, tip)
        cache.runner(ref.repository).run("update-ref", f"refs/heads/{ref.branch}", sha)
    return sha


def list_worktrees_sync(cache: RepoCache, url: str) -> list[WorktreeInfo]:
    """The agent repositories in the cache's worktree directory (HEAD files read, no git
    runs in them); anything else there is listed as prunable."""
    root = cache.worktrees_root(url)
    if not root.is_dir():
        return []
    found: list[WorktreeInfo] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        ours = agentrepo.is_agent_repository(path)
        branch = agentrepo.head_branch(AgentRepo(path, cache.repo_path(url))) if ours else None
        found.append(WorktreeInfo(path, branch, None, not ours))
    return found


async def list_worktrees(cache: RepoCache, repository: str) -> list[WorktreeInfo]:
    """Every agent repository of ``repository`` (an empty list when it is not cached)."""
    url = validate_repository(repository)
    if not (cache.repo_path(url) / "HEAD").is_file():
        return []
    # reads only (directory entries, HEAD files): no lock, no agent waits for a listing
    return await asyncio.to_thread(list_worktrees_sync, cache, url)


async def create_worktree(cache: RepoCache, request: WorktreeRequested) -> WorktreeReady:
    """Make (or reuse, for the same agent and task) the agent's repository."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())
    retry = request.attempt is not None and request.attempt > 1
    return await cache.run_for_agent(
        ref.repository, ref.agent_id, _create, cache, ref, request.base_branch, retry
    )


def _create(
    cache: RepoCache, ref: WorktreeRef, base_branch: str, retry: bool = False
) -> WorktreeReady:
    cache.ensure(ref.repository, base_branch)
    runner = cache.runner(ref.repository)
    base_ref = f"refs/remotes/origin/{base_branch}"
    base = cache.commit_of(ref.repository, base_ref)
    if base is None:
        cache.fetch(ref.repository, base_branch)  # ensure may have skipped a recent fetch
        base = cache.commit_of(ref.repository, base_ref)
        if base is None:
            raise BranchNotFoundError(f"the remote has no branch {base_branch!r}")
    # an empty directory is made into the repository where it is: a warm sandbox may
    # already mount it (shared.sandbox.warmpool)
    if (ref.path.exists() or ref.path.is_symlink()) and not _empty_dir(ref.path):
        if _has_git_entry(ref.path):
            verify_agent_repo(ref.agent_repo)
            on = agentrepo.head_branch(ref.agent_repo)
            if on is not None and on != ref.branch:
                raise WorktreeClashError(
                    f"{ref.path.name} is already the worktree of branch {on}, "
                    f"not {ref.branch}: another agent's worktree has this name"
                )
            log.info("reusing agent repository %s", ref.path, extra=ref.log_extra)
            return _ready(cache, ref, base_ref, reused=True)
        raise WorktreeClashError(f"{ref.path} exists and is not a worktree of this repository")
    holder = _holder(cache, ref)
    if holder is not None:
        raise BranchInUseError(f"{ref.branch} is checked out in {holder.name}")
    existing = cache.commit_of(ref.repository, f"refs/heads/{ref.branch}")
    branch_existed = existing is not None
    start = existing or base
    if not branch_existed and retry:
        start = _pushed_by_earlier_attempt(cache, ref) or start
    ref.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        agentrepo.create(
            ref.agent_repo,
            branch=ref.branch,
            start=start,
            base_branch=base_branch,
            base=base,
            identity=(cache.identity.git_author_name, cache.identity.git_author_email),
            make=make_runner(cache),
        )
        if not branch_existed:
            runner.run("update-ref", f"refs/heads/{ref.branch}", start)
    except GitOpsError:
        shutil.rmtree(ref.path, ignore_errors=True)
        raise
    log.info("created agent repository %s on %s", ref.path, ref.branch, extra=ref.log_extra)
    return _ready(cache, ref, base_ref, reused=False, on_base=base if start == base else None)


def _pushed_by_earlier_attempt(cache: RepoCache, ref: WorktreeRef) -> str | None:
    """The tip of the agent's branch on the remote, when an earlier attempt pushed it and
    ended before its record did (killed, its spawner gone): a retry builds on it, so its
    push is a fast-forward, not a rewrite the remote refuses."""
    cache.fetch(ref.repository, ref.branch)
    return cache.commit_of(ref.repository, f"refs/remotes/origin/{ref.branch}")


def _ready(
    cache: RepoCache, ref: WorktreeRef, base_ref: str, *, reused: bool, on_base: str | None = None
) -> WorktreeReady:
    """``on_base``: the base commit, when the new branch starts right on it (then it is
    the merge base, and no git needs to say so)."""
    runner = cache.runner(ref.repository)
    tip = f"refs/heads/{ref.branch}"
    if reused and agentrepo.head_branch(ref.agent_repo) == ref.branch:
        tip = sync_branch(cache, ref) or tip
    base = on_base or runner.out("merge-base", tip, base_ref)
    return WorktreeReady(
        path=str(ref.path),
        branch=ref.branch,
        repo_path=str(ref.repo),
        base_commit=base,
        reused=reused,
        shared_objects=str(ref.agent_repo.shared_objects),
    )


def _has_git_entry(path: Path) -> bool:
    """A directory with a ``.git`` of any kind: an agent repository, maybe tampered."""
    return path.is_dir() and not path.is_symlink() and os.path.lexists(path / ".git")


def delete_tree(path: Path) -> None:
    """Delete ``path`` (links not followed); directories the agent made unwritable are
    made writable first, so removal never leaves half a repository behind."""

    def retry(function: object, failed: str, _exc: object) -> None:
        parent = os.path.dirname(failed)
        os.chmod(parent, 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, 0o700)
            shutil.rmtree(failed)
        else:
            os.unlink(failed)

    shutil.rmtree(path, onerror=retry)


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _holder(cache: RepoCache, ref: WorktreeRef) -> Path | None:
    """Another of this agent's repositories (another task) on the same branch.

    Only this agent's entries are read (``agent-<agentId>-*``; ids hold no glob
    characters), not every agent's: a create costs the same with 1000 agents around."""
    root = cache.worktrees_root(ref.repository)
    for path in sorted(root.glob(f"agent-{ref.agent_id}-*")):
        if path == ref.path or not agentrepo.is_agent_repository(path):
            continue
        if agentrepo.head_branch(AgentRepo(path, ref.repo)) == ref.branch:
            return path
    return None


async def remove_worktree(cache: RepoCache, request: WorktreeRemoveRequested) -> WorktreeRemoved:
    """Salvage unpushed work to ``mosaic/salvage/<agentId>``, then remove the repository."""
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    if not (ref.repo / "HEAD").is_file():
        return WorktreeRemoved(removed=False)
    return await cache.run_for_agent(ref.repository, ref.agent_id, _remove, cache, ref, urgent=True)


def _remove(cache: RepoCache, ref: WorktreeRef) -> WorktreeRemoved:
    runner = cache.runner(ref.repository)
    holder = _holder(cache, ref)
    removed = False
    salvage_branch = None
    if _has_git_entry(ref.path):
        if holder is None:
            salvage_branch = _salvage(cache, ref)
        delete_tree(ref.path)
        removed = True
    else:
        if _empty_dir(ref.path):  # a warm sandbox's slot the repository never filled
            ref.path.rmdir()
        elif ref.path.exists() or ref.path.is_symlink():
            # Not a repository of ours, yet in our directory: keep it aside, never delete.
            aside = ref.path.parent / ".orphaned" / f"{ref.path.name}-{int(time.time())}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            ref.path.rename(aside)
            log.warning("moved stray %s to %s", ref.path, aside, extra=ref.log_extra)
            removed = True
        if holder is None:  # the cache's branch may hold a commit gitops made: keep it
            removed = removed or cache.has_ref(ref.repository, f"refs/heads/{ref.branch}")
            salvage_branch = salvage(cache, runner, None, ref.branch, ref.agent_id, ref.task_id)
    if holder is None:  # deleting a ref that is not there succeeds: no check first
        runner.run("update-ref", "-d", f"refs/heads/{ref.branch}")
    log.info("removed worktree %s (salvage: %s)", ref.path, salvage_branch, extra=ref.log_extra)
    return WorktreeRemoved(removed=removed, salvage_branch=salvage_branch)


def _salvage(cache: RepoCache, ref: WorktreeRef) -> str | None:
    """Keep the agent's commits (its branch and HEAD, detached mid-rebase too) and its
    uncommitted files. A repository whose structure is not what gitops made gives only
    its files (on the cache's branch): its refs are not read."""
    runner = cache.runner(ref.repository)
    keep: list[str] = []
    head = None
    cached = cached_tip(cache, ref)
    try:
        verify_agent_repo(ref.agent_repo)
        head = agent_head(cache, ref, "HEAD")
        tip = agent_head(cache, ref, f"refs/heads/{ref.branch}")
        for sha in dict.fromkeys(s for s in (head, tip) if s):
            import_commit(cache, ref, sha, cached)
        keep = [sha for sha in (tip,) if sha and sha != head]
    except WorktreeTamperedError as exc:
        log.warning("salvaging only the files of a tampered repository: %s", exc,
                    extra=ref.log_extra)  # fmt: skip
        head, keep = None, []
    if head is None:
        head = cached
    elif cached is not None and cached != head:
        keep.append(cached)  # gitops' last commit, if the agent never got aligned to it
    with agentrepo.files_view(ref.agent_repo, head, make_runner(cache), into_cache=True) as view:
        return salvage(
            cache, runner, view, ref.branch, ref.agent_id, ref.task_id, head=head, keep=keep
        )
