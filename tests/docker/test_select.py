"""Choosing the sandbox: docker when a daemon answers and the image exists, else local."""

from __future__ import annotations

import logging
from pathlib import Path

import docker
import pytest

from shared.sandbox.base import SandboxError
from shared.sandbox.docker import DockerSandboxFactory
from shared.sandbox.select import sandbox_factory
from shared.sandbox.settings import SandboxSettings

pytestmark = pytest.mark.docker


def dead_client(tmp_path: Path) -> docker.DockerClient:
    """A client of a daemon that does not exist (a socket path nobody listens on)."""
    return docker.DockerClient(
        base_url=f"unix://{tmp_path}/no-docker.sock", version="1.41", timeout=2
    )


async def test_auto_takes_docker_when_it_answers(
    docker_client: docker.DockerClient, settings: SandboxSettings
) -> None:
    factory = await sandbox_factory(settings, docker_client=docker_client)
    assert isinstance(factory, DockerSandboxFactory)
    assert factory.kind == "docker"


async def test_auto_falls_back_loudly(
    tmp_path: Path, sandbox_image: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = SandboxSettings(kind="auto", image=sandbox_image)
    factory = await sandbox_factory(settings, docker_client=dead_client(tmp_path))
    assert factory.kind == "none"
    assert "not isolation" in caplog.text


async def test_auto_falls_back_without_the_image(
    docker_client: docker.DockerClient, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = SandboxSettings(kind="auto", image=f"mosaic/nope-{unique}:x")
    factory = await sandbox_factory(settings, docker_client=docker_client)
    assert factory.kind == "none"
    assert "build-images.sh" in caplog.text


async def test_docker_required_never_falls_back(tmp_path: Path, sandbox_image: str) -> None:
    settings = SandboxSettings(kind="docker", image=sandbox_image)
    with pytest.raises(SandboxError, match="MOSAIC_SANDBOX=docker"):
        await sandbox_factory(settings, docker_client=dead_client(tmp_path))


async def test_local_when_asked(tmp_path: Path) -> None:
    # Docker is not even asked: a dead client would not matter.
    settings = SandboxSettings(kind="none")
    factory = await sandbox_factory(settings, docker_client=dead_client(tmp_path))
    assert factory.kind == "none"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSAIC_SANDBOX", "none")
    monkeypatch.setenv("MOSAIC_SANDBOX_IMAGE", "example/sandbox:1")
    monkeypatch.setenv("MOSAIC_SANDBOX_MEMORY_MB", "512")
    monkeypatch.setenv("MOSAIC_SANDBOX_PIDS", "64")
    settings = SandboxSettings()
    assert settings.kind == "none"
    assert settings.image == "example/sandbox:1"
    assert settings.limits().memory_mb == 512
    assert settings.limits().pids == 64
