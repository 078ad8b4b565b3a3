"""Conflict detection before push, push, and retry after rebase."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services.gitops import commits, conflicts, worktrees
from services.gitops.errors import ConflictError, PushRejectedError
from services.gitops.repos import RepoCache
from services.gitops.safety import GitRunner
from shared.messages.gitops import WorktreeRequested
from tests.conftest import git
from tests.integration.gitops.conftest import (
    align,
    commit_req,
    push_req,
    push_to_remote,
    rm_req,
    wt_req,
)

pytestmark = pytest.mark.integration


async def _edit_and_commit(cache: RepoCache, remote: Path, agent: str, text: str) -> Path:
    ready = await worktrees.create_worktree(cache, wt_req(remote, agent))
    path = Path(ready.path or "")
    (path / "app.py").write_text(text)
    made = await commits.commit(cache, commit_req(remote, agent, message=f"{agent} edits add"))
    assert made.commit
    assert made.error is None
    align(path, made.commit)
    return path


async def test_second_agent_gets_conflict_then_pushes_after_rebase(
    cache: RepoCache, remote_repo: Path
) -> None:
    await _edit_and_commit(cache, remote_repo, "one", "def add(a, b):\n    return b + a\n")
    second = await _edit_and_commit(
        cache, remote_repo, "two", "def add(a, b):\n    return sum((a, b))\n"
    )
    pushed = await conflicts.push(cache, push_req(remote_repo, "one"))
    assert pushed.remote_branch == "mosaic/agent-one"
    assert git(remote_repo, "rev-parse", "mosaic/agent-one") == pushed.commit
    # a reviewer merges agent one's branch into main
    git(remote_repo, "update-ref", "refs/heads/main", pushed.commit or "")

    head_before = git(second, "rev-parse", "HEAD")
    with pytest.raises(ConflictError) as caught:
        await conflicts.push(cache, push_req(remote_repo, "two"))
    assert caught.value.paths == ("app.py",)
    assert caught.value.code == "conflict"
    # nothing was pushed and the worktree was not touched
    assert "mosaic/agent-two" not in git(remote_repo, "branch", "--list")
    assert git(second, "rev-parse", "HEAD") == head_before
    assert git(second, "status", "--porcelain") == ""

    # the spawner points the agent's origin/main at the base the conflict was found
    # against (no network needed), then the agent rebases with plain git and resolves it
    assert caught.value.base_commit == git(remote_repo, "rev-parse", "main")
    git(second, "update-ref", "refs/remotes/origin/main", caught.value.base_commit)
    with pytest.raises(subprocess.CalledProcessError):
        git(second, "rebase", "origin/main")
    assert git(second, "diff", "--name-only", "--diff-filter=U") == "app.py"
    (second / "app.py").write_text("def add(a, b):\n    return sum((b, a))\n")
    git(second, "add", "app.py")
    git(second, "-c", "core.editor=true", "rebase", "--continue")
    rebased = git(second, "rev-parse", "HEAD")
    assert git(second, "log", "-1", "--format=%cn <%ce>") == "Mosaic Test <mosaic@test.invalid>"

    made = await commits.commit(cache, commit_req(remote_repo, "two", message="nothing left"))
    assert made.nothing_to_commit
    assert made.head == rebased
    done = await conflicts.push(cache, push_req(remote_repo, "two"))
    assert done.remote_branch == "mosaic/agent-two"
    assert git(remote_repo, "rev-parse", "mosaic/agent-two") == done.commit
    assert git(remote_repo, "merge-base", "--is-ancestor", "main", "mosaic/agent-two") == ""


async def test_clean_push_while_base_moved_elsewhere(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    await _edit_and_commit(cache, remote_repo, "three", "def add(a, b):\n    return a+b\n")
    push_to_remote(remote_repo, tmp_path, {"README.md": "# demo, moved on\n"})
    done = await conflicts.push(cache, push_req(remote_repo, "three"))
    assert done.remote_branch == "mosaic/agent-three"
    assert done.conflicts == ()


async def test_pushed_work_needs_no_salvage(cache: RepoCache, remote_repo: Path) -> None:
    await _edit_and_commit(cache, remote_repo, "four", "def add(a, b):\n    return a + b  # 4\n")
    await conflicts.push(cache, push_req(remote_repo, "four"))
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "four"))
    assert removed.removed
    assert removed.salvage_branch is None


def test_find_conflicts_lists_every_conflicting_path(cache: RepoCache, tmp_path: Path) -> None:
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    ident = ["-c", "user.name=a", "-c", "user.email=a@a"]
    for name in ("a.txt", "b.txt", "c.txt"):
        (repo / name).write_text("base\n")
    git(repo, "add", "-A")
    git(repo, *ident, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "side")
    for name in ("a.txt", "b.txt", "c.txt"):
        (repo / name).write_text("side\n")
    git(repo, *ident, "commit", "-qam", "side")
    git(repo, "checkout", "-q", "main")
    for name in ("a.txt", "c.txt"):
        (repo / name).write_text("main\n")
    git(repo, *ident, "commit", "-qam", "main")
    assert conflicts.find_conflicts(GitRunner(repo / ".git"), "main", "side") == ("a.txt", "c.txt")


async def test_rewritten_branch_is_never_force_pushed(cache: RepoCache, remote_repo: Path) -> None:
    path = await _edit_and_commit(cache, remote_repo, "five", "def add(a, b):\n    return 5\n")
    first = await conflicts.push(cache, push_req(remote_repo, "five"))
    git(path, "commit", "-q", "--amend", "-m", "new")
    await commits.commit(cache, commit_req(remote_repo, "five", message="nothing left"))
    with pytest.raises(PushRejectedError):
        await conflicts.push(cache, push_req(remote_repo, "five"))
    assert git(remote_repo, "rev-parse", "mosaic/agent-five") == first.commit


async def test_a_retry_builds_on_what_a_killed_attempt_pushed(
    cache: RepoCache, remote_repo: Path
) -> None:
    """Attempt 1 pushed, then died before its record said so (killed, its spawner gone);
    its repository was removed. Attempt 2 starts from the pushed tip, so its own push is a
    fast-forward (it used to start from the base and be refused as a rewrite)."""
    first = await worktrees.create_worktree(cache, wt_req(remote_repo, "again"))
    root = Path(first.path or "")
    (root / "one.txt").write_text("attempt 1\n")
    made = await commits.commit(cache, commit_req(remote_repo, "again"))
    assert (await conflicts.push(cache, push_req(remote_repo, "again"))).commit == made.commit
    await worktrees.remove_worktree(cache, rm_req(remote_repo, "again"))

    retry = WorktreeRequested(
        agent_id="again", task_id="t1", repository=str(remote_repo), base_branch="main", attempt=2
    )
    second = await worktrees.create_worktree(cache, retry)
    root = Path(second.path or "")
    assert git(root, "rev-parse", "HEAD") == made.commit
    assert second.base_commit == first.base_commit
    (root / "two.txt").write_text("attempt 2\n")
    again = await commits.commit(cache, commit_req(remote_repo, "again"))
    pushed = await conflicts.push(cache, push_req(remote_repo, "again"))
    assert pushed.commit == again.commit
    assert git(remote_repo, "rev-parse", "mosaic/agent-again~1") == made.commit
