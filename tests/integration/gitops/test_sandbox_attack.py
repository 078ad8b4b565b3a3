"""Issue 17's attack from inside a bwrap sandbox (``sandbox_attack.py``): an agent cannot
move another agent's branch or the cache's refs, and nothing outside its repository
changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gitops.repos import RepoCache
from shared.sandbox.bwrap import BwrapSandboxFactory
from shared.sandbox.settings import SandboxSettings
from tests.integration.gitops.sandbox_attack import attack_from_sandbox
from tests.integration.sandbox.conftest import require_bwrap

pytestmark = pytest.mark.integration


async def test_an_agent_cannot_touch_the_cache_or_another_agent_from_bwrap(
    cache: RepoCache, remote_repo: Path, unique: str
) -> None:
    await require_bwrap()
    await attack_from_sandbox(cache, remote_repo, BwrapSandboxFactory(SandboxSettings()), unique)
