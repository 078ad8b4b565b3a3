"""Creating, killing and closing sandboxes: nothing is ever left behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import docker
import pytest

from services.spawner.sandbox.base import Limits, SandboxError, SandboxSpec
from services.spawner.sandbox.docker import DockerSandboxFactory
from services.spawner.sandbox.settings import SandboxSettings

from .conftest import MakeSandbox, labelled

pytestmark = pytest.mark.docker


def state(client: docker.DockerClient, container_id: str) -> str:
    return str(client.api.inspect_container(container_id)["State"]["Status"])


async def test_kill_stops_everything_at_once(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient
) -> None:
    sandbox = await make_sandbox()
    running = asyncio.create_task(sandbox.exec("sleep 60", timeout=60))
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await sandbox.kill()
    result = await asyncio.wait_for(running, 5)
    assert time.monotonic() - started < 3
    assert result.exit_code != 0
    assert state(docker_client, sandbox.container_id) == "exited"
    with pytest.raises(SandboxError):
        await sandbox.exec("true", timeout=5)
    await sandbox.kill()  # again: harmless


async def test_close_removes_the_container(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient
) -> None:
    sandbox = await make_sandbox()
    assert labelled(docker_client, sandbox.spec.agent_id) == [sandbox.container_id]
    await sandbox.close()
    assert labelled(docker_client, sandbox.spec.agent_id) == []
    await sandbox.close()  # idempotent
    with pytest.raises(SandboxError, match="closed"):
        await sandbox.exec("true", timeout=5)


async def test_close_after_kill(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient
) -> None:
    sandbox = await make_sandbox()
    await sandbox.kill()
    await sandbox.close()
    assert labelled(docker_client, sandbox.spec.agent_id) == []


async def test_close_when_container_vanished(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient
) -> None:
    sandbox = await make_sandbox()
    docker_client.api.remove_container(sandbox.container_id, force=True)
    with pytest.raises(SandboxError):
        await sandbox.exec("true", timeout=5)
    await sandbox.close()


async def test_missing_image_leaves_nothing(
    docker_client: docker.DockerClient, worktree: Path, unique: str
) -> None:
    factory = DockerSandboxFactory(docker_client, SandboxSettings(image=f"mosaic/nope-{unique}:x"))
    spec = SandboxSpec(agent_id=f"agent-{unique}", task_id="t", worktree=worktree)
    with pytest.raises(SandboxError, match="not found"):
        await factory.create(spec)
    assert labelled(docker_client, spec.agent_id) == []


async def test_failed_start_leaves_nothing(
    factory: DockerSandboxFactory, docker_client: docker.DockerClient, worktree: Path, unique: str
) -> None:
    # Far more CPUs than the host has: the container is created, then refused at start
    # (or at create, depending on the daemon); either way none may remain.
    spec = SandboxSpec(
        agent_id=f"agent-{unique}", task_id="t", worktree=worktree, limits=Limits(cpus=512)
    )
    with pytest.raises(SandboxError):
        await factory.create(spec)
    assert labelled(docker_client, spec.agent_id) == []


async def test_missing_worktree_is_refused(factory: DockerSandboxFactory, tmp_path: Path) -> None:
    spec = SandboxSpec(agent_id="a", task_id="t", worktree=tmp_path / "nope")
    with pytest.raises(SandboxError, match="does not exist"):
        await factory.create(spec)


async def test_cancelled_create_leaves_nothing(
    factory: DockerSandboxFactory, docker_client: docker.DockerClient, worktree: Path, unique: str
) -> None:
    spec = SandboxSpec(agent_id=f"agent-{unique}", task_id="t", worktree=worktree)
    creating = asyncio.create_task(factory.create(spec))
    await asyncio.sleep(0.05)
    creating.cancel()
    with pytest.raises(asyncio.CancelledError):
        await creating
    for _ in range(100):
        if not labelled(docker_client, spec.agent_id):
            break
        await asyncio.sleep(0.1)
    assert labelled(docker_client, spec.agent_id) == []


async def test_sandboxes_are_independent(make_sandbox: MakeSandbox) -> None:
    first, second = await asyncio.gather(make_sandbox(), make_sandbox())
    assert first.container_id != second.container_id
    await first.kill()
    result = await second.exec("echo alive", timeout=10)
    assert result.output == "alive\n"
