"""Fixtures for gitops tests: a repository cache in a temp home, request builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gitops.repos import RepoCache
from services.gitops.settings import GitOpsSettings
from shared.messages.gitops import (
    CommitRequested,
    PushRequested,
    WorktreeRemoveRequested,
    WorktreeRequested,
)
from shared.settings import GitSettings, HomeSettings
from tests.conftest import git


@pytest.fixture
def home(tmp_path: Path) -> HomeSettings:
    return HomeSettings(mosaic_home=tmp_path / "home")


@pytest.fixture
def cache(home: HomeSettings) -> RepoCache:
    return RepoCache(
        home,
        GitSettings(git_author_name="Mosaic Test", git_author_email="mosaic@test.invalid"),
        GitOpsSettings(network_timeout=20, local_timeout=20),
    )


def wt_req(repo: Path | str, agent: str, task: str = "t1", base: str = "main") -> WorktreeRequested:
    return WorktreeRequested(agent_id=agent, task_id=task, repository=str(repo), base_branch=base)


def commit_req(repo: Path | str, agent: str, task: str = "t1", message: str = "change",
               yolo: bool = False) -> CommitRequested:  # fmt: skip
    return CommitRequested(
        agent_id=agent, task_id=task, repository=str(repo), message=message, yolo=yolo
    )


def push_req(repo: Path | str, agent: str, task: str = "t1") -> PushRequested:
    return PushRequested(agent_id=agent, task_id=task, repository=str(repo))


def rm_req(repo: Path | str, agent: str, task: str = "t1") -> WorktreeRemoveRequested:
    return WorktreeRemoveRequested(agent_id=agent, task_id=task, repository=str(repo))


def push_to_remote(
    remote: Path, tmp: Path, files: dict[str, str], message: str = "upstream"
) -> str:
    """Commit ``files`` on the remote's main through a scratch clone (a human's push)."""
    clone = tmp / f"human-{len(list(tmp.glob('human-*')))}"
    git(tmp, "clone", "-q", str(remote), str(clone))
    for name, text in files.items():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text(text)
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-q", "-m", message)
    git(clone, "push", "-q", "origin", "main")
    return git(clone, "rev-parse", "HEAD")


def align(agent_repo: Path, commit: str | None) -> None:
    """What the spawner does in the agent's sandbox after gitops committed its leftovers
    (``services.spawner.agentgit.align``), done here as the agent would."""
    assert commit
    git(agent_repo, "reset", "--mixed", "-q", commit)
