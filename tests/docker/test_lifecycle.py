"""Creating, killing and closing sandboxes: nothing is ever left behind."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import docker
import pytest

from shared.sandbox.base import Limits, SandboxError, SandboxGoneError, SandboxSpec
from shared.sandbox.docker import DockerSandbox, DockerSandboxFactory
from shared.sandbox.settings import SandboxSettings

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


async def test_kill_now_then_kill_waits_for_the_same_kill(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient
) -> None:
    """A kill order's callback starts the kill (``kill_now``, no await); the run's own
    ``kill`` then returns only once the container is stopped."""
    sandbox = await make_sandbox()
    running = asyncio.create_task(sandbox.exec("sleep 60", timeout=60))
    await asyncio.sleep(0.5)
    sandbox.kill_now()
    await asyncio.wait_for(sandbox.kill(), 30)
    assert state(docker_client, sandbox.container_id) == "exited"
    result = await asyncio.wait_for(running, 10)
    assert result.exit_code != 0


async def test_more_commands_than_the_loops_threads_run_at_once_and_a_kill_is_not_behind_them(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient
) -> None:
    """Each running command holds a thread: with more of them than the event loop's
    default pool has (cores + 4), a new command and a kill used to wait for one of those
    commands to end (10 docker agents: a kill took 25 s)."""
    sandbox = await make_sandbox()
    busy = min(32, (os.cpu_count() or 1) + 4) + 2
    sleeps = [asyncio.create_task(sandbox.exec("sleep 120", timeout=120)) for _ in range(busy)]
    try:
        quick = await asyncio.wait_for(sandbox.exec("echo still-served", timeout=30), 60)
        assert quick.output.strip() == "still-served"
        started = time.monotonic()
        await asyncio.wait_for(sandbox.kill(), 60)
        results = await asyncio.wait_for(asyncio.gather(*sleeps), 60)
        assert all(r.exit_code != 0 for r in results)
        assert time.monotonic() - started < 60  # not the sleeps' 120 s
        assert state(docker_client, sandbox.container_id) == "exited"
    finally:
        for task in sleeps:
            task.cancel()


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
    with pytest.raises(SandboxGoneError):
        await sandbox.exec("true", timeout=5)
    await sandbox.close()


async def test_container_removed_mid_command_is_sandbox_gone(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient
) -> None:
    """Removed from outside during a command: neither the command nor a write "succeed".

    Before, the command came back as an ordinary exit 137 after a fraction of its time,
    the next write_file as a tool error, and the agent went on to finish and push the base.
    """
    sandbox = await make_sandbox()
    running = asyncio.create_task(sandbox.exec("sleep 30", timeout=60))
    deadline = time.monotonic() + 20
    while "sleep 30" not in str(docker_client.api.top(sandbox.container_id)["Processes"]):
        assert time.monotonic() < deadline, "the command never started"
        await asyncio.sleep(0.05)
    started = time.monotonic()
    await asyncio.to_thread(docker_client.api.remove_container, sandbox.container_id, force=True)
    with pytest.raises(SandboxGoneError) as gone:
        await running
    assert time.monotonic() - started < 10
    assert gone.value.retryable
    assert gone.value.code == "sandbox_gone"
    with pytest.raises(SandboxGoneError):
        await sandbox.write_file("hello.py", b"print('hello')\n")
    with pytest.raises(SandboxGoneError):
        await sandbox.read_file("README.md", max_bytes=100)


async def test_a_command_killed_inside_a_live_container_is_an_ordinary_result(
    sandbox: DockerSandbox,
) -> None:
    result = await sandbox.exec("kill -9 $$", timeout=10)
    assert result.exit_code == 137
    assert not result.timed_out


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
