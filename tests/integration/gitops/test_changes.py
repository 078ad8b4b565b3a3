"""An agent's changes against its base (the conflict forecast's input), on real worktrees:
committed, uncommitted and untracked work, read without touching the agent's index,
and the ``mosaic.repo.pushed`` announcement over a real nats-server."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker

from services.gitops import changes, commits, conflicts, worktrees
from services.gitops.app import create_app
from services.gitops.errors import WorktreeNotFoundError
from services.gitops.repos import RepoCache
from services.gitops.settings import GitOpsSettings
from shared import subjects
from shared.bus import make_broker, request
from shared.messages.gitops import (
    ChangesFound,
    ChangesRequested,
    CommitMade,
    FileChange,
    LineRange,
    PushDone,
    RepoPushed,
    WorktreeReady,
)
from shared.settings import GitSettings, HomeSettings, NatsSettings, host_id
from shared.subjects import GitOp
from tests.conftest import git
from tests.integration.gitops.attack import ATTACK
from tests.integration.gitops.conftest import commit_req, push_req, wt_req


def on_host(operation: GitOp) -> str:
    """The subject of ``operation`` on this machine's host (the services' default)."""
    return subjects.gitops(host_id(), operation)


pytestmark = pytest.mark.integration

CALC = "".join(f"line {n}\n" for n in range(1, 21))


def changes_req(repo: Path, agent: str, task: str = "t1") -> ChangesRequested:
    return ChangesRequested(agent_id=agent, task_id=task, repository=str(repo))


def r(start: int, end: int) -> LineRange:
    return LineRange(start=start, end=end)


def attack(repository: Path, marker: Path) -> None:
    subprocess.run(["sh", "-c", ATTACK, "sh", str(repository), str(marker)], check=True)


def loose_objects(repo: Path) -> set[str]:
    objects = repo / "objects"
    return {f"{d.name}{f.name}" for d in objects.iterdir() if len(d.name) == 2 for f in d.iterdir()}


@pytest.fixture
def calc_remote(remote_repo: Path, tmp_path: Path) -> Path:
    """The test remote with a 20-line ``calc.txt`` and a small binary file on main."""
    clone = tmp_path / "calc-seed"
    git(tmp_path, "clone", "-q", str(remote_repo), str(clone))
    (clone / "calc.txt").write_text(CALC)
    (clone / "logo.bin").write_bytes(b"\x00\x01\x02")
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-qm", "calc")
    git(clone, "push", "-q", "origin", "main")
    return remote_repo


async def test_committed_uncommitted_and_untracked_work_with_base_lines(
    cache: RepoCache, calc_remote: Path
) -> None:
    ready = await worktrees.create_worktree(cache, wt_req(calc_remote, "ch1"))
    root = Path(ready.path or "")
    lines = CALC.splitlines(keepends=True)
    lines[2] = "three\n"  # committed: base line 3
    (root / "calc.txt").write_text("".join(lines))
    made = await commits.commit(cache, commit_req(calc_remote, "ch1"))
    assert made.commit is not None
    lines[9:11] = ["ten\n", "eleven\n"]  # uncommitted: base lines 10-11
    lines.insert(15, "new after fifteen\n")  # uncommitted insertion after base line 15
    (root / "calc.txt").write_text("".join(lines))
    (root / "new.py").write_text("A = 1\nB = 2\n")  # untracked
    (root / "logo.bin").write_bytes(b"\x00\x09")  # binary: the whole file
    (root / "app.py").rename(root / "sums.py")  # renamed (uncommitted): both names, whole
    index = root / ".git" / "index"
    index_before = index.read_bytes()
    status_before = git(root, "status", "--porcelain")
    objects_before = loose_objects(Path(ready.repo_path or "")) | loose_objects(root / ".git")

    found = await changes.agent_changes(cache, changes_req(calc_remote, "ch1"))

    assert found.error is None
    assert found.base_commit == ready.base_commit
    by_path = {change.path: change for change in found.files}
    assert by_path["calc.txt"] == FileChange(
        path="calc.txt", ranges=(r(3, 3), r(10, 11), r(16, 15))
    )
    assert by_path["new.py"] == FileChange(path="new.py", ranges=(r(1, 0),))
    assert by_path["logo.bin"].ranges is None
    assert by_path["app.py"].ranges is None
    assert by_path["sums.py"].ranges is None
    assert set(by_path) == {"calc.txt", "new.py", "logo.bin", "app.py", "sums.py"}
    # read only: the agent's index and status as they were, no blob written
    assert index.read_bytes() == index_before
    assert git(root, "status", "--porcelain") == status_before
    objects_after = loose_objects(Path(ready.repo_path or "")) | loose_objects(root / ".git")
    written = objects_after - objects_before
    assert written <= {"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"}  # the empty blob at most


async def test_an_unchanged_worktree_has_no_changes(cache: RepoCache, calc_remote: Path) -> None:
    await worktrees.create_worktree(cache, wt_req(calc_remote, "ch2"))
    found = await changes.agent_changes(cache, changes_req(calc_remote, "ch2"))
    assert found.files == ()
    assert found.base_commit is not None


async def test_a_missing_worktree_is_refused(cache: RepoCache, calc_remote: Path) -> None:
    with pytest.raises(WorktreeNotFoundError):
        await changes.agent_changes(cache, changes_req(calc_remote, "nobody"))


async def test_an_agent_repository_in_the_worktree_runs_nothing(
    cache: RepoCache, calc_remote: Path, tmp_path: Path
) -> None:
    """The attack of issues 17 and 18 (attack.py): the agent's own ``.git`` declares a
    clean filter, a textconv, an fsmonitor and hooks that would write the marker. Its
    changes are read (the new file among them) and none of them runs."""
    ready = await worktrees.create_worktree(cache, wt_req(calc_remote, "ch3"))
    marker = tmp_path / "pwned"
    attack(Path(ready.path or ""), marker)
    found = await changes.agent_changes(cache, changes_req(calc_remote, "ch3"))
    assert {change.path for change in found.files} == {".gitattributes", "stolen.txt"}
    assert not marker.exists()


async def test_a_nested_repository_the_agent_planted_runs_nothing(
    cache: RepoCache, calc_remote: Path, tmp_path: Path
) -> None:
    """A repository planted inside the worktree declares a clean filter on its changed
    file; reading the agent's changes never starts a git inside it."""
    ready = await worktrees.create_worktree(cache, wt_req(calc_remote, "ch5"))
    root = Path(ready.path or "")
    marker = tmp_path / "pwned"
    sub = root / "sub"
    git(root, "init", "-q", str(sub))
    (sub / "a.txt").write_text("one\n")
    git(sub, "add", "a.txt")
    git(sub, "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", "a")
    (sub / ".git" / "config").write_text(
        f'[core]\n\trepositoryformatversion = 0\n[filter "evil"]\n\tclean = id > {marker} && cat\n'
    )
    (sub / ".gitattributes").write_text("* filter=evil\n")
    (sub / "a.txt").write_text("two\n")
    (root / "calc.txt").write_text(CALC.replace("line 1\n", "one\n"))
    found = await changes.agent_changes(cache, changes_req(calc_remote, "ch5"))
    # the planted repository is a new gitlink (its HEAD read, nothing inside it run)
    assert found.files == (
        FileChange(path="calc.txt", ranges=(r(1, 1),)),
        FileChange(path="sub", ranges=(r(1, 0),)),
    )
    assert not marker.exists()


async def test_pushed_changes_are_against_the_fork_point(
    cache: RepoCache, calc_remote: Path, tmp_path: Path
) -> None:
    ready = await worktrees.create_worktree(cache, wt_req(calc_remote, "ch4"))
    root = Path(ready.path or "")
    (root / "calc.txt").write_text(CALC.replace("line 12\n", "twelve\n"))
    await commits.commit(cache, commit_req(calc_remote, "ch4"))
    done = await conflicts.push(cache, push_req(calc_remote, "ch4"))
    assert done.commit is not None
    found = changes.pushed_changes(cache, str(calc_remote), done.commit, "main")
    assert found.base_commit == ready.base_commit
    assert found.files == (FileChange(path="calc.txt", ranges=(r(12, 12),)),)


@pytest.fixture
async def bus(nats_url: str, tmp_path: Path) -> AsyncIterator[NatsBroker]:
    app = create_app(
        NatsSettings(nats_url=nats_url),
        HomeSettings(mosaic_home=tmp_path / "home"),
        GitSettings(git_author_name="Bus Agent", git_author_email="bus@test.invalid"),
        GitOpsSettings(network_timeout=20, local_timeout=20),
    )
    assert app.broker is not None
    async with app.broker:
        await app.broker.start()
        caller = make_broker(NatsSettings(nats_url=nats_url), "changes-test-client")
        async with caller:
            await caller.start()
            yield caller


async def test_a_push_is_announced_and_changes_are_asked_over_the_bus(
    bus: NatsBroker, calc_remote: Path
) -> None:
    announced: asyncio.Queue[bytes] = asyncio.Queue()

    async def heard(msg: object) -> None:
        await announced.put(msg.data)  # type: ignore[attr-defined]

    sub = await bus.connection.subscribe(subjects.REPO_PUSHED, cb=heard)
    try:
        for agent in ("pa", "pb"):
            ready = await request(
                bus,
                on_host(GitOp.WORKTREE_CREATE),
                wt_req(calc_remote, agent),
                WorktreeReady,
                20,
            )
            assert ready.error is None
        pa = Path(ready.path or "").parent / "agent-pa-t1"
        (pa / "calc.txt").write_text(CALC.replace("line 4\n", "four\n"))
        made = await request(bus, on_host(GitOp.COMMIT), commit_req(calc_remote, "pa"),
                             CommitMade, 20)  # fmt: skip
        assert made.error is None
        pushed = await request(bus, on_host(GitOp.PUSH), push_req(calc_remote, "pa"),
                               PushDone, 20)  # fmt: skip
        assert pushed.error is None
        event = RepoPushed.from_bytes(await asyncio.wait_for(announced.get(), 20))
        assert event.agent_id == "pa"
        assert event.repository == str(calc_remote)
        assert event.base_branch == "main"
        assert event.branch == "mosaic/agent-pa"
        assert event.commit == pushed.commit
        assert event.files == (FileChange(path="calc.txt", ranges=(r(4, 4),)),)

        pb = Path(ready.path or "")
        (pb / "calc.txt").write_text(CALC.replace("line 5\n", "five\n"))  # not committed
        mine = await request(bus, on_host(GitOp.CHANGES), changes_req(calc_remote, "pb"),
                             ChangesFound, 20)  # fmt: skip
        assert mine.error is None
        assert mine.base_commit == event.base_commit
        assert mine.files == (FileChange(path="calc.txt", ranges=(r(5, 5),)),)
        bad = await request(bus, on_host(GitOp.CHANGES), changes_req(calc_remote, "nobody"),
                            ChangesFound, 20)  # fmt: skip
        assert bad.error is not None
        assert bad.error.code == "worktree_not_found"
    finally:
        await sub.unsubscribe()
