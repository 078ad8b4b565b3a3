"""Repository cache and worktree lifecycle against a real bare remote."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from services.gitops import commits, worktrees
from services.gitops.errors import BranchInUseError, GitOpsError, WorktreeClashError
from services.gitops.repos import RepoCache
from shared.settings import HomeSettings
from tests.conftest import git
from tests.integration.gitops.conftest import align, commit_req, push_to_remote, rm_req, wt_req

pytestmark = pytest.mark.integration


async def test_ten_concurrent_requests_cost_one_clone(cache: RepoCache, remote_repo: Path) -> None:
    replies = await asyncio.gather(
        *(worktrees.create_worktree(cache, wt_req(remote_repo, f"a{i}")) for i in range(10))
    )
    clones = [p for p in cache.root.iterdir() if not p.name.startswith(".")]
    assert sorted(p.name for p in clones) == sorted(
        [cache.slug(str(remote_repo)), cache.slug(str(remote_repo)) + "_worktrees"]
    )
    assert len({r.repo_path for r in replies}) == 1
    # one fetch-pack per clone would show as several object packs; one clone, one pack
    assert not list(cache.root.glob(".clone-*"))


async def test_lifecycle_naming_and_reuse(cache: RepoCache, remote_repo: Path) -> None:
    url = str(remote_repo)
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "ag1", "task9"))
    path = Path(ready.path or "")
    assert path == cache.worktrees_root(url) / "agent-ag1-task9"
    assert path.parent.name.endswith("_worktrees")
    assert ready.branch == "mosaic/agent-ag1"
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD") == "mosaic/agent-ag1"
    assert (path / "README.md").read_text() == "# demo\n"
    assert ready.base_commit == git(remote_repo, "rev-parse", "main")
    assert not ready.reused

    again = await worktrees.create_worktree(cache, wt_req(remote_repo, "ag1", "task9"))
    assert again.reused
    assert again.path == ready.path

    listed = await worktrees.list_worktrees(cache, url)
    assert [(w.path, w.branch) for w in listed] == [(path, "mosaic/agent-ag1")]

    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "ag1", "task9"))
    assert removed.removed
    assert removed.salvage_branch is None
    assert not path.exists()
    assert await worktrees.list_worktrees(cache, url) == []
    assert git(cache.repo_path(url), "branch", "--list", "mosaic/*") == ""


async def test_clash_with_another_agents_worktree(cache: RepoCache, remote_repo: Path) -> None:
    # agent "x-y" task "z" and agent "x" task "y-z" both name agent-x-y-z
    await worktrees.create_worktree(cache, wt_req(remote_repo, "x-y", "z"))
    with pytest.raises(WorktreeClashError, match="another agent"):
        await worktrees.create_worktree(cache, wt_req(remote_repo, "x", "y-z"))
    assert git(cache.repo_path(str(remote_repo)), "branch", "--list", "mosaic/agent-x") == ""


async def test_same_agent_second_task_while_first_is_live(
    cache: RepoCache, remote_repo: Path
) -> None:
    await worktrees.create_worktree(cache, wt_req(remote_repo, "solo", "t1"))
    with pytest.raises(BranchInUseError):
        await worktrees.create_worktree(cache, wt_req(remote_repo, "solo", "t2"))
    assert not (cache.worktrees_root(str(remote_repo)) / "agent-solo-t2").exists()


async def test_stray_directory_at_the_path_is_a_clash(cache: RepoCache, remote_repo: Path) -> None:
    stray = cache.worktrees_root(str(remote_repo)) / "agent-s-t1"
    stray.mkdir(parents=True)
    (stray / "notes.txt").write_text("someone else's\n")
    with pytest.raises(WorktreeClashError):
        await worktrees.create_worktree(cache, wt_req(remote_repo, "s"))
    assert (stray / "notes.txt").exists()


async def test_an_empty_directory_at_the_path_becomes_the_repository_in_place(
    cache: RepoCache, remote_repo: Path
) -> None:
    """A warm sandbox's slot placed at the path (shared.sandbox.warmpool) is filled where
    it is, the same directory (a container's bind mount follows it); one that is never
    filled goes on removal instead of being kept aside as a stray."""
    await worktrees.create_worktree(cache, wt_req(remote_repo, "first"))  # the cache exists
    root = cache.worktrees_root(str(remote_repo))
    placed = root / "agent-warm-t1"
    placed.mkdir()
    inode = placed.stat().st_ino
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "warm"))
    assert Path(ready.path or "") == placed
    assert placed.stat().st_ino == inode
    assert (placed / "README.md").read_text() == "# demo\n"
    assert git(placed, "rev-parse", "--abbrev-ref", "HEAD") == "mosaic/agent-warm"

    unfilled = root / "agent-never-t1"
    unfilled.mkdir()
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "never"))
    assert removed.error is None
    assert not unfilled.exists()
    assert not (root / ".orphaned").exists()


async def test_twenty_concurrent_creates(cache: RepoCache, remote_repo: Path) -> None:
    replies = await asyncio.gather(
        *(worktrees.create_worktree(cache, wt_req(remote_repo, f"c{i}", "t")) for i in range(20))
    )
    assert all(r.error is None and Path(r.path or "").is_dir() for r in replies)
    assert len(await worktrees.list_worktrees(cache, str(remote_repo))) == 20


async def test_removal_when_directory_is_already_gone(cache: RepoCache, remote_repo: Path) -> None:
    import shutil

    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "gone"))
    shutil.rmtree(ready.path or "")
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "gone"))
    assert removed.removed
    assert removed.error is None
    assert removed.salvage_branch is None
    assert await worktrees.list_worktrees(cache, str(remote_repo)) == []
    # and the same agent can start over
    again = await worktrees.create_worktree(cache, wt_req(remote_repo, "gone"))
    assert Path(again.path or "").is_dir()
    assert not again.reused


async def test_remove_of_unknown_worktree_is_harmless(cache: RepoCache, remote_repo: Path) -> None:
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "never"))
    assert not removed.removed
    assert removed.error is None


async def test_salvage_of_uncommitted_and_unpushed_work(
    cache: RepoCache, remote_repo: Path
) -> None:
    url = str(remote_repo)
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "sv"))
    path = Path(ready.path or "")
    (path / "committed.txt").write_text("committed but never pushed\n")
    made = await commits.commit(cache, commit_req(remote_repo, "sv", message="work"))
    assert made.commit
    align(path, made.commit)
    (path / "app.py").write_text("def add(a, b):\n    return a + b + 0\n")
    (path / "new.txt").write_text("untracked\n")

    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "sv"))
    assert removed.salvage_branch == "mosaic/salvage/sv"
    assert not path.exists()
    repo = cache.repo_path(url)
    tip = "mosaic/salvage/sv"
    assert git(repo, "show", f"{tip}:committed.txt") == "committed but never pushed"
    assert git(repo, "show", f"{tip}:new.txt") == "untracked"
    assert "a + b + 0" in git(repo, "show", f"{tip}:app.py")
    assert git(repo, "rev-parse", f"{tip}^") == made.commit

    # a second salvage of the same agent keeps the first one reachable
    ready2 = await worktrees.create_worktree(cache, wt_req(remote_repo, "sv", "t2"))
    (Path(ready2.path or "") / "other.txt").write_text("second task\n")
    again = await worktrees.remove_worktree(cache, rm_req(remote_repo, "sv", "t2"))
    assert again.salvage_branch == tip
    assert git(repo, "show", f"{tip}:other.txt") == "second task"
    assert git(repo, "merge-base", "--is-ancestor", made.commit or "", tip) == ""


async def test_two_instances_share_the_cache_through_the_file_lock(
    cache: RepoCache, remote_repo: Path
) -> None:
    # a second RepoCache has its own asyncio locks, like a second gitops process
    other = RepoCache(HomeSettings(mosaic_home=cache.root.parent), cache.identity, cache.settings)
    replies = await asyncio.gather(
        *(
            worktrees.create_worktree(c, wt_req(remote_repo, f"p{i}"))
            for i, c in enumerate([cache, other] * 5)
        )
    )
    assert len({r.repo_path for r in replies}) == 1
    assert not list(cache.root.glob(".clone-*"))
    assert len(await worktrees.list_worktrees(other, str(remote_repo))) == 10


async def test_mid_rebase_the_commit_is_sent_back_and_removal_salvages_both(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    """An agent stopped in the middle of a rebase (HEAD detached): gitops does not commit
    (``wrong_branch``, told to the agent), and removal keeps the half-rebased HEAD, the
    branch it came from, and the files as they are."""
    url = str(remote_repo)
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "mid"))
    path = Path(ready.path or "")
    (path / "app.py").write_text("def add(a, b):\n    return a + b  # mine\n")
    made = await commits.commit(cache, commit_req(remote_repo, "mid", message="mine"))
    align(path, made.commit)
    upstream = push_to_remote(remote_repo, tmp_path, {"app.py": "def add(a, b):\n    return 0\n"})
    git(cache.repo_path(url), "fetch", "-q", "origin", "+refs/heads/main:refs/remotes/origin/main")
    git(path, "update-ref", "refs/remotes/origin/main", upstream)
    with pytest.raises(subprocess.CalledProcessError):
        git(path, "rebase", "origin/main")
    (path / "notes.txt").write_text("half way\n")

    with pytest.raises(GitOpsError) as refused:
        await commits.commit(cache, commit_req(remote_repo, "mid", message="again"))
    assert refused.value.code == "wrong_branch"
    assert "detached" in refused.value.message

    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "mid"))
    assert removed.salvage_branch == "mosaic/salvage/mid"
    repo = cache.repo_path(url)
    tip = "mosaic/salvage/mid"
    assert git(repo, "show", f"{tip}:notes.txt") == "half way"
    assert "<<<<<<<" in git(repo, "show", f"{tip}:app.py")  # the conflict as the agent left it
    assert git(repo, "merge-base", "--is-ancestor", made.commit or "", tip) == ""
    assert git(repo, "merge-base", "--is-ancestor", upstream, tip) == ""
    assert not path.exists()


async def test_another_agents_branch_that_cannot_be_read_does_not_fail_a_commit(
    cache: RepoCache, remote_repo: Path
) -> None:
    """Another agent's branch deleted while a commit walks the cache's refs reads as a
    ref to a missing object: ``git rev-list --all`` then dies (``fatal: bad object
    refs/heads/mosaic/agent-…``; one commit of 200 failed so in a load test). Made
    deterministic here: a branch of another agent names an object the cache lacks."""
    await worktrees.create_worktree(cache, wt_req(remote_repo, "other"))
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "busy"))
    repo = cache.repo_path(str(remote_repo))
    (repo / "refs" / "heads" / "mosaic" / "agent-other").write_text("1" * 40 + "\n")
    (Path(ready.path or "") / "work.txt").write_text("work\n")
    made = await commits.commit(cache, commit_req(remote_repo, "busy", message="work"))
    assert made.error is None, made.error
    assert made.commit is not None
    assert git(repo, "show", f"{made.commit}:work.txt") == "work"


async def test_a_commit_gitops_made_survives_a_repository_that_vanished(
    cache: RepoCache, remote_repo: Path
) -> None:
    """The agent's directory gone (or replaced by a stray one): the commit gitops made in
    the cache's branch is salvaged before the branch is deleted."""
    import shutil

    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "lost"))
    path = Path(ready.path or "")
    (path / "work.txt").write_text("work\n")
    made = await commits.commit(cache, commit_req(remote_repo, "lost", message="work"))
    shutil.rmtree(path)
    path.mkdir()
    (path / "stray.txt").write_text("someone else's\n")
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "lost"))
    assert removed.removed
    assert removed.salvage_branch == "mosaic/salvage/lost"
    repo = cache.repo_path(str(remote_repo))
    assert git(repo, "rev-parse", "mosaic/salvage/lost") == made.commit
    assert list((path.parent / ".orphaned").iterdir())
