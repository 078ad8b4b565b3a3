"""The spawner's two writes into an agent's repository, run in its sandbox
(``services/spawner/agentgit.py``), on each process backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.spawner import agentgit
from tests.conftest import git

from .conftest import MakeBox

pytestmark = pytest.mark.integration


async def test_point_base_and_align_move_only_the_refs(make_box: MakeBox, worktree: Path) -> None:
    base = git(worktree, "rev-parse", "HEAD")
    (worktree / "later.txt").write_text("later\n")
    git(worktree, "add", "later.txt")
    git(worktree, "commit", "-qm", "later")
    later = git(worktree, "rev-parse", "HEAD")
    box = await make_box()

    assert await agentgit.point_base(box, "main", later)
    assert git(worktree, "rev-parse", "refs/remotes/origin/main") == later
    assert await agentgit.align(box, base)
    assert git(worktree, "rev-parse", "HEAD") == base
    assert git(worktree, "symbolic-ref", "HEAD") == "refs/heads/mosaic/agent-1"
    assert (worktree / "later.txt").read_text() == "later\n"  # files as they were
    assert git(worktree, "status", "--porcelain") == "?? later.txt"


async def test_without_git_in_the_sandbox_nothing_moves_and_the_caller_hears_it(
    make_box: MakeBox, worktree: Path
) -> None:
    head = git(worktree, "rev-parse", "HEAD")
    box = await make_box(env=(("PATH", "/nonexistent"),))
    assert not await agentgit.point_base(box, "main", "0" * 40)
    assert not await agentgit.align(box, "0" * 40)
    assert git(worktree, "rev-parse", "HEAD") == head


async def test_bad_input_never_reaches_a_shell(make_box: MakeBox) -> None:
    box = await make_box()
    with pytest.raises(agentgit.AgentGitError, match="base branch"):
        await agentgit.point_base(box, "--upload-pack=x", "0" * 40)
    with pytest.raises(agentgit.AgentGitError, match="commit id"):
        await agentgit.align(box, "HEAD; touch pwned")
    with pytest.raises(agentgit.AgentGitError, match="failed in the agent's sandbox"):
        await agentgit.align(box, "1" * 40)  # a commit the repository does not have
