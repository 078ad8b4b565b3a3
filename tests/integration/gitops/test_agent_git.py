"""Issues 17 and 18: an agent's own ``.git`` never makes a host-side git run its programs.

Every host-side git path that looks at an agent repository is tried after the attack
(see ``attack.py``): the gates' worktree check and repository view (the AI review's
diff, the file listing), gitops' commit, push and removal (salvage). Each does its
work, and the marker the agent's filter, textconv, fsmonitor or hooks would write never
appears. A control first shows the attack is real: git started in the repository does
run them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services.gates.repo import RepoView, check_worktree
from services.gitops import changes, commits, conflicts, worktrees
from services.gitops.errors import WorktreeTamperedError
from services.gitops.repos import RepoCache
from shared.agentrepo import AgentRepo
from shared.messages.gitops import ChangesRequested, LineRange
from tests.conftest import git
from tests.integration.gitops.attack import ATTACK
from tests.integration.gitops.conftest import commit_req, push_req, rm_req, wt_req

pytestmark = pytest.mark.integration


def attack(worktree: Path, marker: Path) -> None:
    subprocess.run(["sh", "-c", ATTACK, "sh", str(worktree), str(marker)], check=True)


async def test_an_agent_repository_config_runs_nothing_on_the_host(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    url = str(remote_repo)
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "evil"))
    root = Path(ready.path or "")
    marker = tmp_path / "pwned"
    attack(root, marker)

    # the control: git that follows the repository's .git runs the agent's programs
    subprocess.run(["git", "diff", "--no-index", "/dev/null", "stolen.txt"], cwd=root,
                   capture_output=True, check=False)  # fmt: skip
    assert marker.exists(), "the attack did not work against plain git: the test proves nothing"
    marker.unlink()

    assert check_worktree(str(root), tmp_path) == root.resolve()
    view = RepoView.open(root, None)
    try:
        diff, _ = view.diff(100_000)
        assert "+new work" in diff
        assert "stolen.txt" in view.files()
    finally:
        view.close()
    made = await commits.commit(cache, commit_req(remote_repo, "evil"))
    assert made.commit
    assert git(cache.repo_path(url), "show", f"{made.commit}:stolen.txt") == "new work"
    pushed = await conflicts.push(cache, push_req(remote_repo, "evil"))
    assert pushed.commit == made.commit
    (root / "stolen.txt").write_text("more work\n")
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "evil"))
    assert removed.salvage_branch == "mosaic/salvage/evil"
    assert not marker.exists()


async def test_the_gates_read_an_intact_worktree_without_its_attributes_running(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    """With ``.git`` intact the agent can still write ``.gitattributes``: it names a
    filter no config defines (the cache's config is not the agent's), so the review's
    diff shows the change and nothing runs."""
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "attrs"))
    root = Path(ready.path or "")
    (root / ".gitattributes").write_text("* filter=evil diff=evil\n")
    (root / "app.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "new.txt").write_text("new\n")
    view = RepoView.open(root, None)
    try:
        diff, cut = view.diff(100_000)
        assert "-    return a + b" in diff
        assert "+    return a - b" in diff
        assert "+new" in diff
        assert not cut
        assert "new.txt" in view.files()
    finally:
        view.close()


async def test_a_nested_repository_the_agent_planted_runs_nothing(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    """A repository inside the worktree has its own config, which the runner never read,
    and ``git add -A``/``status`` start a git inside a gitlink's repository: gitops
    refuses to commit one (naming its ``.git``), the gates' diff does not look inside,
    removal does not salvage through it, and its filter never runs."""
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "nested"))
    root = Path(ready.path or "")
    marker = tmp_path / "pwned"
    sub = root / "sub"
    for args in (
        ["init", "-q", str(sub)],
        ["-C", str(sub), "add", "a.txt"],
        ["-C", str(sub), "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", "a"],
    ):
        if args[-1] == "a.txt":
            (sub / "a.txt").write_text("one\n")
        subprocess.run(["git", *args], check=True, capture_output=True)
    (sub / ".git" / "config").write_text(
        f'[core]\n\trepositoryformatversion = 0\n[filter "evil"]\n\tclean = id > {marker} && cat\n'
    )
    (sub / ".gitattributes").write_text("* filter=evil\n")
    (sub / "a.txt").write_text("two\n")
    (root / "work.txt").write_text("work\n")

    with pytest.raises(WorktreeTamperedError, match=r"sub/\.git"):
        await commits.commit(cache, commit_req(remote_repo, "nested", message="sub"))
    view = RepoView.open(root, None)
    view.diff(100_000)
    view.files()
    view.close()
    with pytest.raises(WorktreeTamperedError, match=r"sub/\.git"):
        await commits.commit(cache, commit_req(remote_repo, "nested", message="again"))
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "nested"))
    assert removed.removed
    assert not marker.exists()


async def test_agent_changes_are_what_it_would_change_if_it_finished_now(
    cache: RepoCache, remote_repo: Path
) -> None:
    """gitops' ``agent_changes`` (the conflict forecast's reader) on an agent repository:
    committed, staged, unstaged and new files against the base, read without writing into
    the agent's repository or the cache."""
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "changes"))
    root = Path(ready.path or "")
    (root / "README.md").write_text("# demo, committed\n")
    git(root, "commit", "-qam", "readme")
    (root / "app.py").write_text("def add(a, b):\n    return b + a\n")
    (root / "new.txt").write_text("new\n")
    repo = AgentRepo.at(root)
    objects = sorted(p.name for p in (repo.cache / "objects").rglob("*"))
    own = sorted(p.name for p in repo.own_objects.rglob("*"))
    status = git(root, "status", "--porcelain")

    found = await changes.agent_changes(
        cache, ChangesRequested(agent_id="changes", task_id="t1", repository=str(remote_repo))
    )
    assert found.base_commit == ready.base_commit
    by_path = {change.path: change.ranges for change in found.files}
    assert set(by_path) == {"README.md", "app.py", "new.txt"}
    assert by_path["app.py"] == (LineRange(start=2, end=2),)
    assert sorted(p.name for p in (repo.cache / "objects").rglob("*")) == objects
    assert sorted(p.name for p in repo.own_objects.rglob("*")) == own
    assert git(root, "status", "--porcelain") == status
