"""Docker-tier fixtures: a real daemon, the locally built sandbox image, real sandboxes.

Nothing here pulls an image: testcontainers' Ryuk is disabled and every image is built
locally by scripts/build-images.sh (offline). Without a daemon the tier is skipped,
naming what is missing, except under CI=true, where it fails.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import DockerException, ImageNotFound

from shared.sandbox.base import Limits, SandboxSpec
from shared.sandbox.containers import LABEL_AGENT
from shared.sandbox.docker import DockerSandbox, DockerSandboxFactory
from shared.sandbox.settings import SandboxSettings

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("MOSAIC_SANDBOX_IMAGE", "mosaic/sandbox:latest")
BUILD_TIMEOUT_S = 600


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the docker tier cannot run: {reason}", pytrace=False)
    pytest.skip(f"Docker daemon not reachable: {reason}")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of a daemon that answers a ping (else skip, or fail under CI)."""
    if shutil.which("docker") is None and not Path("/var/run/docker.sock").exists():
        _unavailable("no docker CLI and no /var/run/docker.sock (run scripts/ensure-docker.sh)")
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except DockerException as exc:
        _unavailable(f"{exc} (run scripts/ensure-docker.sh as root to start dockerd)")
    yield client
    client.close()


def _build_image() -> str | None:
    """Build the sandbox image offline; ``None`` on success, else why it failed."""
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-images.sh"), "--offline"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
        env={**os.environ, "MOSAIC_SANDBOX_IMAGE": IMAGE},
    )
    if result.returncode != 0:
        return f"cannot build {IMAGE}: {result.stderr.strip()[-2000:]}"
    print(f"\nbuilt {IMAGE} in {time.monotonic() - started:.0f} s")
    return None


_build_error: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build a missing image before the tests start, outside any per-test timeout.

    A cold build (debootstrap) takes one to two minutes, longer than a test may.
    """
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("docker") for item in session.items):
        return
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except DockerException:
        return  # the docker_client fixture reports it
    try:
        client.images.get(IMAGE)
    except ImageNotFound:
        error = _build_image()
        if error:
            _build_error.append(error)
    finally:
        client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: docker.DockerClient) -> str:
    """The sandbox image, built offline by scripts/build-images.sh when missing."""
    if _build_error:
        _unavailable(_build_error[0])
    try:
        docker_client.images.get(IMAGE)
    except ImageNotFound:
        error = _build_image()
        if error:
            _unavailable(error)
    return IMAGE


@pytest.fixture
def settings(sandbox_image: str) -> SandboxSettings:
    return SandboxSettings(image=sandbox_image, exec_grace_s=3.0)


@pytest.fixture
def factory(docker_client: docker.DockerClient, settings: SandboxSettings) -> DockerSandboxFactory:
    return DockerSandboxFactory(docker_client, settings)


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """A small worktree (root-owned here, so the factory hands it to uid 1000)."""
    tree = tmp_path / "worktree"
    tree.mkdir()
    (tree / "README.md").write_text("# demo\n")
    (tree / "src").mkdir()
    (tree / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    return tree


def labelled(client: docker.DockerClient, agent_id: str) -> list[str]:
    """Ids of every container (running or not) labelled with ``agent_id``."""
    found = client.api.containers(all=True, filters={"label": f"{LABEL_AGENT}={agent_id}"})
    return [str(c["Id"]) for c in found]


MakeSandbox = Callable[..., Awaitable[DockerSandbox]]


@pytest.fixture
async def make_sandbox(
    factory: DockerSandboxFactory, worktree: Path, unique: str, docker_client: docker.DockerClient
) -> AsyncIterator[MakeSandbox]:
    """Creates sandboxes on ``worktree``; closes each after the test and checks it is gone."""
    made: list[DockerSandbox] = []
    numbers = itertools.count()

    async def make(
        limits: Limits | None = None,
        network: bool = False,
        agent_id: str | None = None,
        deployment: str | None = None,
        **fields: Any,
    ) -> DockerSandbox:
        spec = SandboxSpec(
            agent_id=agent_id or f"agent-{unique}-{next(numbers)}",
            task_id=f"task-{unique}",
            worktree=worktree,
            network=network,
            limits=limits or Limits(),
            owner=f"test-{unique}",
            deployment=deployment,
            **fields,
        )
        sandbox = await factory.create(spec)
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        await sandbox.close()
    for sandbox in made:
        assert labelled(docker_client, sandbox.spec.agent_id) == []


@pytest.fixture
async def sandbox(make_sandbox: MakeSandbox) -> DockerSandbox:
    """One sandbox with default limits and no network."""
    return await make_sandbox()
