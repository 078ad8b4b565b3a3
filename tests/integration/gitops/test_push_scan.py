"""Issue 18, item 4 and issue 17, item 1: a push scans every commit it pushes, whoever
made it.

The commits here are made in the agent's own repository (as an agent committing in its
sandbox would), bypassing the scan of gitops' commit path; gitops' commit step imports
them into the cache, and the push scans the whole ``base..head`` range.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gitops import commits, conflicts, worktrees
from services.gitops.errors import SecretFoundError
from services.gitops.repos import RepoCache
from tests.conftest import git
from tests.integration.gitops.conftest import commit_req, push_req, wt_req
from tests.integration.gitops.test_secrets import AWS_ID, GITHUB

pytestmark = pytest.mark.integration


def agent_commit(root: Path, message: str) -> str:
    """A commit the agent makes itself (the identity gitops configured in its repository)."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


async def test_a_secret_in_an_earlier_commit_of_the_range_blocks_the_push(
    cache: RepoCache, remote_repo: Path
) -> None:
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "scan"))
    root = Path(ready.path or "")
    (root / "deploy.py").write_text(f'KEY = "x"\nREGION = "eu"\nAWS = "{AWS_ID}"\n')
    leaked = agent_commit(root, "add deploy settings")
    (root / "deploy.py").write_text('KEY = "x"\nREGION = "eu"\n')
    agent_commit(root, "drop the key again")  # the tip is clean, the history is not
    (root / "later.txt").write_text("clean work after it\n")
    agent_commit(root, "more work")  # the secret is in the middle of base..head

    made = await commits.commit(cache, commit_req(remote_repo, "scan", message="nothing"))
    assert made.nothing_to_commit
    assert git(root, "log", "-1", "--format=%an") == "Mosaic Test"
    with pytest.raises(SecretFoundError) as raised:
        await conflicts.push(cache, push_req(remote_repo, "scan"))
    message = raised.value.message
    assert leaked[:12] in message
    assert "deploy.py:3" in message
    assert AWS_ID not in message
    assert AWS_ID not in repr(raised.value.findings)
    assert git(remote_repo, "branch", "--list", "mosaic/agent-scan") == ""


async def test_a_secret_only_in_a_commit_message_blocks_the_push(
    cache: RepoCache, remote_repo: Path
) -> None:
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "msg"))
    root = Path(ready.path or "")
    (root / "notes.txt").write_text("nothing secret here\n")
    sha = agent_commit(root, f"wire the CI\n\nit uses token {GITHUB} for now")

    await commits.commit(cache, commit_req(remote_repo, "msg", message="nothing"))
    with pytest.raises(SecretFoundError) as raised:
        await conflicts.push(cache, push_req(remote_repo, "msg"))
    message = raised.value.message
    assert f"commit {sha[:12]} message:3" in message
    assert GITHUB not in message
    assert GITHUB not in repr(raised.value.findings)
    assert git(remote_repo, "branch", "--list", "mosaic/agent-msg") == ""


async def test_clean_commits_from_both_paths_push(cache: RepoCache, remote_repo: Path) -> None:
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "clean"))
    root = Path(ready.path or "")
    (root / "one.txt").write_text("one\n")
    agent_commit(root, "one, by the agent")
    (root / "two.txt").write_text("two\n")
    made = await commits.commit(cache, commit_req(remote_repo, "clean", message="two"))
    done = await conflicts.push(cache, push_req(remote_repo, "clean"))
    assert done.commit == made.commit
