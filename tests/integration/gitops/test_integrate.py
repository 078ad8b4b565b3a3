"""The merge queue's git half on real repositories: base status, integrate, land."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.gitops import basestatus, commits, integrate, worktrees
from services.gitops.errors import InvalidRequestError, SecretFoundError, WorktreeNotFoundError
from services.gitops.repos import RepoCache
from shared.messages.gitops import (
    BaseStatusRequested,
    Integrated,
    IntegrateRequested,
    LandRequested,
)
from tests.conftest import git
from tests.integration.gitops.conftest import commit_req, push_to_remote, wt_req

pytestmark = pytest.mark.integration


def _int_req(repo: Path, agent: str, *, discard: bool = False) -> IntegrateRequested:
    return IntegrateRequested(agent_id=agent, task_id="t1", repository=str(repo), discard=discard)


def _land_req(repo: Path, agent: str, done: Integrated) -> LandRequested:
    assert done.commit
    assert done.base_commit
    assert done.head
    return LandRequested(
        agent_id=agent,
        task_id="t1",
        repository=str(repo),
        commit=done.commit,
        onto=done.base_commit,
        head=done.head,
    )


async def _agent_commits(cache: RepoCache, remote: Path, agent: str, files: dict[str, str]) -> Path:
    ready = await worktrees.create_worktree(cache, wt_req(remote, agent))
    path = Path(ready.path or "")
    for name, text in files.items():
        (path / name).write_text(text)
    made = await commits.commit(cache, commit_req(remote, agent, message=f"{agent}: change"))
    assert made.commit, made
    return path


async def test_base_status_shows_whether_the_agent_rebased_onto_a_newer_base(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    url = str(remote_repo)
    seed = git(remote_repo, "rev-parse", "main")
    path = await _agent_commits(cache, remote_repo, "st", {"st.txt": "st\n"})
    request = BaseStatusRequested(agent_id="st", task_id="t1", repository=url)
    status = await basestatus.base_status(cache, request)
    assert status.base == seed
    assert status.merge_base == seed  # it builds on the base it started from
    moved = push_to_remote(remote_repo, tmp_path, {"README.md": "# moved\n"})
    await asyncio.to_thread(cache.fetch, url, "main")  # as for a conflict
    git(path, "update-ref", "refs/remotes/origin/main", moved)  # as the spawner points it
    git(path, "-c", "user.name=a", "-c", "user.email=a@a", "rebase", "-q", "origin/main")
    await commits.commit(cache, commit_req(remote_repo, "st", message="after rebase"))
    status = await basestatus.base_status(cache, request)
    assert status.base == moved
    assert status.merge_base == moved  # rebased onto the newer base
    assert status.head == git(cache.repo_path(url), "rev-parse", "mosaic/agent-st")


async def test_integrate_rebases_onto_the_moved_base_and_land_fast_forwards_it(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    await _agent_commits(cache, remote_repo, "a1", {"a1.txt": "one\n"})
    moved = push_to_remote(remote_repo, tmp_path, {"README.md": "# moved\n"})

    done = await integrate.integrate(cache, _int_req(remote_repo, "a1"))
    assert done.error is None
    assert not done.conflicts
    assert done.base_commit == moved
    assert done.commit != done.head  # replayed onto the moved base
    scratch = Path(done.scratch or "")
    assert scratch.name == "merge-a1-t1"
    assert (scratch / "a1.txt").read_text() == "one\n"
    assert (scratch / "README.md").read_text() == "# moved\n"
    assert git(remote_repo, "rev-parse", "main") == moved  # nothing pushed yet

    landed = await integrate.land(cache, _land_req(remote_repo, "a1", done))
    assert landed.commit == done.commit
    assert landed.range == f"{moved}..{done.commit}"
    assert landed.head == done.head
    assert git(remote_repo, "rev-parse", "main") == done.commit
    assert git(remote_repo, "rev-parse", "mosaic/agent-a1") == done.head
    assert git(remote_repo, "rev-parse", "main~1") == moved  # a fast-forward, linear
    assert not scratch.exists()


async def test_a_branch_that_contains_the_base_is_landed_as_it_is(
    cache: RepoCache, remote_repo: Path
) -> None:
    await _agent_commits(cache, remote_repo, "ff", {"ff.txt": "ff\n"})
    done = await integrate.integrate(cache, _int_req(remote_repo, "ff"))
    assert done.commit == done.head  # nothing rewritten
    await integrate.land(cache, _land_req(remote_repo, "ff", done))
    assert git(remote_repo, "rev-parse", "main") == done.head


async def test_a_conflict_answers_paths_and_the_fetched_base_and_changes_nothing(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    path = await _agent_commits(
        cache, remote_repo, "cx", {"app.py": "def add(a, b):\n    return b + a\n"}
    )
    moved = push_to_remote(remote_repo, tmp_path, {"app.py": "def add(a, b):\n    return a+b\n"})
    head_before = git(path, "rev-parse", "HEAD")
    status_before = git(path, "status", "--porcelain")

    done = await integrate.integrate(cache, _int_req(remote_repo, "cx"))
    assert done.conflicts == ("app.py",)
    assert done.base_commit == moved
    assert done.error is not None
    assert done.error.code == "conflict"
    assert done.commit is None
    assert git(remote_repo, "rev-parse", "main") == moved
    assert git(path, "rev-parse", "HEAD") == head_before  # the agent's files untouched
    assert git(path, "status", "--porcelain") == status_before
    assert (path / "app.py").read_text() == "def add(a, b):\n    return b + a\n"
    assert not (cache.worktrees_root(str(remote_repo)) / "merge-cx-t1").exists()


async def test_land_refused_because_the_base_moved_leaves_the_base_where_it_was(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    await _agent_commits(cache, remote_repo, "mv", {"mv.txt": "mv\n"})
    done = await integrate.integrate(cache, _int_req(remote_repo, "mv"))
    moved = push_to_remote(remote_repo, tmp_path, {"other.txt": "someone else\n"})

    landed = await integrate.land(cache, _land_req(remote_repo, "mv", done))
    assert landed.moved is True
    assert landed.commit is None
    assert git(remote_repo, "rev-parse", "main") == moved
    # atomic: the agent branch was not pushed either
    assert "mosaic/agent-mv" not in git(remote_repo, "branch", "--list")

    again = await integrate.integrate(cache, _int_req(remote_repo, "mv"))
    assert again.base_commit == moved
    landed = await integrate.land(cache, _land_req(remote_repo, "mv", again))
    assert git(remote_repo, "rev-parse", "main") == landed.commit == again.commit


async def test_land_scans_every_commit_it_adds_for_secrets(
    cache: RepoCache, remote_repo: Path
) -> None:
    path = await _agent_commits(cache, remote_repo, "sx", {"ok.txt": "fine\n"})
    key = "AKIA" + "Q3EGRIBBK2XNZJ7W"
    (path / "deploy.py").write_text(f'AWS_ACCESS_KEY_ID = "{key}"\n')
    git(path, "add", "deploy.py")  # an agent-made commit, past the commit-time scan
    git(path, "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-q", "-m", "deploy")
    made = await commits.commit(cache, commit_req(remote_repo, "sx", message="finish"))
    assert made.error is None  # nothing left to commit: its own commit is kept as it is
    done = await integrate.integrate(cache, _int_req(remote_repo, "sx"))
    before = git(remote_repo, "rev-parse", "main")
    with pytest.raises(SecretFoundError) as caught:
        await integrate.land(cache, _land_req(remote_repo, "sx", done))
    assert key not in caught.value.message
    assert "deploy.py" in caught.value.message
    assert git(remote_repo, "rev-parse", "main") == before


async def test_land_refuses_a_commit_that_is_not_the_integration(
    cache: RepoCache, remote_repo: Path
) -> None:
    await _agent_commits(cache, remote_repo, "wr", {"wr.txt": "wr\n"})
    with pytest.raises(WorktreeNotFoundError):
        await integrate.land(
            cache,
            LandRequested(
                agent_id="wr",
                task_id="t1",
                repository=str(remote_repo),
                commit="a" * 40,
                onto="b" * 40,
                head="c" * 40,
            ),
        )
    done = await integrate.integrate(cache, _int_req(remote_repo, "wr"))
    forged = done.model_copy(update={"commit": done.base_commit})
    with pytest.raises(InvalidRequestError):
        await integrate.land(cache, _land_req(remote_repo, "wr", forged))
    with pytest.raises(InvalidRequestError):
        await integrate.land(
            cache, _land_req(remote_repo, "wr", done).model_copy(update={"commit": "main"})
        )
    await integrate.integrate(cache, _int_req(remote_repo, "wr", discard=True))
    assert not Path(done.scratch or "").exists()


async def test_integration_runs_nothing_an_agent_planted(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    """The agent's commits name a filter, a merge driver and a diff driver in
    ``.gitattributes``, and the cache's config defines them (as an attacker with a way to
    write it would): the rebase in the scratch worktree, its checkout and the landing
    run none of them, on a clean replay and on a conflict."""
    url = str(remote_repo)
    marker = tmp_path / "pwned"
    evil = f"sh -c 'touch {marker}; cat'"
    attributes = "* filter=pwn merge=pwn diff=pwn\n"
    await _agent_commits(
        cache,
        remote_repo,
        "ev",
        {".gitattributes": attributes, "app.py": "def add(a, b):\n    return b + a\n"},
    )
    repo = cache.repo_path(url)
    for key in ("filter.pwn.clean", "filter.pwn.smudge", "filter.pwn.process",
                "merge.pwn.driver", "diff.pwn.textconv", "diff.pwn.command"):  # fmt: skip
        git(repo, "config", key, evil)
    second = {".gitattributes": attributes, "app.py": "def add(a, b):\n    return 0\n"}
    await _agent_commits(cache, remote_repo, "ev2", second)  # the same line as "ev"
    push_to_remote(remote_repo, tmp_path, {"README.md": "# moved\n"})  # a clean replay
    done = await integrate.integrate(cache, _int_req(remote_repo, "ev"))
    assert done.commit is not None
    assert done.commit != done.head
    await integrate.land(cache, _land_req(remote_repo, "ev", done))
    assert git(remote_repo, "show", "main:.gitattributes") == attributes.strip()
    assert not marker.exists()

    conflict = await integrate.integrate(cache, _int_req(remote_repo, "ev2"))
    assert conflict.conflicts == ("app.py",)
    assert not marker.exists()
