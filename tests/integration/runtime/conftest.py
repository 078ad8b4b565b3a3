"""Fixtures for runtime integration tests: a real git worktree and a local sandbox on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.sandbox.base import Limits, SandboxSpec
from shared.sandbox.host import HostSandbox, HostSandboxFactory
from tests.conftest import git
from tests.fakes.fixtures import (  # noqa: F401
    fake_messages_api,
    fake_messages_api_server,
    fake_model_settings,
)


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """A real git repository with a little Python project, and a secret outside it."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("top secret\n")
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    (repo / "README.md").write_text("# demo\n")
    (repo / "app.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "src").mkdir()
    (repo / "src" / "util.py").write_text("VALUE = 1\n\n\ndef helper():\n    return VALUE\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed")
    return repo


@pytest.fixture
async def sandbox(worktree: Path, tmp_path: Path) -> AsyncIterator[HostSandbox]:
    """A local sandbox on ``worktree`` with modest limits."""
    spec = SandboxSpec(
        agent_id="agent-1",
        task_id="task-1",
        worktree=worktree,
        limits=Limits(memory_mb=1024, file_size_mb=16, cpu_seconds=60),
    )
    box = await HostSandboxFactory(tmp_root=tmp_path).create(spec)
    yield box
    await box.close()
