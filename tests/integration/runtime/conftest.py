"""Fixtures for runtime integration tests: a real git worktree and a local sandbox on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.sandbox.base import Limits, SandboxSpec
from shared.sandbox.host import HostSandbox, HostSandboxFactory
from tests.fakes.fixtures import (  # noqa: F401
    fake_messages_api,
    fake_messages_api_server,
    fake_model_settings,
)
from tests.integration.sandbox.conftest import make_project


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """A real git repository with a little Python project, and a secret outside it."""
    return make_project(tmp_path)


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
