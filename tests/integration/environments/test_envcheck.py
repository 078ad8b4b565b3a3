"""A spawner's environment check reads only repositories of gitops's cache: a request
naming any other directory (elsewhere, through ``..``, through a symlink in the cache) is
refused before anything is read, with real git repositories and a real Valkey."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.spawner.envcheck import check_environment
from shared.environments import Environments
from shared.messages.checks import EnvironmentChecked, EnvironmentCheckRequested
from tests.integration.environments.repos import Repo

pytestmark = pytest.mark.integration


def bwrap_environments(redis: Redis, unique: str) -> Environments:
    return Environments(
        redis=redis,
        prefix=f"t{unique}",
        docker_client=None,
        sandbox_kind="bwrap",
        default_image="mosaic/sandbox:latest",
    )


async def ask(envs: Environments, root: Path, repo_path: Path, commit: str) -> EnvironmentChecked:
    asked = EnvironmentCheckRequested(repo_path=str(repo_path), commit=commit)
    return await check_environment(envs, "spawner-test", root, asked.to_bytes())


async def test_only_repositories_of_the_cache_are_read(
    tmp_path: Path, redis: Redis, unique: str
) -> None:
    root = tmp_path / "home" / "repos"
    root.mkdir(parents=True)
    inside = Repo(root, "shop-0123456789ab")
    commit = inside.commit({".mosaic/environment.toml": 'image = "debian:12"\n'})
    outside = Repo(tmp_path, "elsewhere")
    outside.commit({".mosaic/environment.toml": 'image = "debian:12"\n'})
    (root / "link").symlink_to(outside.bare)
    envs = bwrap_environments(redis, unique)

    read = await ask(envs, root, inside.bare, commit)
    assert read.error is None
    assert read.ok is False  # it was read: this spawner is bwrap, the repository needs docker
    assert ".mosaic/environment.toml needs the docker sandbox" in read.detail

    for path in (outside.bare, root / ".." / ".." / "elsewhere", root / "link", root):
        refused = await ask(envs, root, path, commit)
        assert refused.error is not None, path
        assert refused.error.code == "invalid_request"
        assert "not a repository of the cache" in refused.error.message
    malformed = await check_environment(envs, "spawner-test", root, b'{"repoPath": "/r"}')
    assert malformed.error is not None
    assert malformed.error.code == "invalid_request"
