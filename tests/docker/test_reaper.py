"""The orphan reaper removes exactly the containers of agents that are no longer live."""

from __future__ import annotations

import asyncio

import docker
import pytest
from prometheus_client import REGISTRY

from services.spawner.sandbox.docker import DockerSandbox
from services.spawner.sandbox.reaper import reap_orphans, run_reaper

from .conftest import MakeSandbox, labelled

pytestmark = pytest.mark.docker


def reaped_total() -> float:
    return REGISTRY.get_sample_value("mosaic_sandbox_orphans_reaped_total") or 0.0


async def three(make_sandbox: MakeSandbox, unique: str) -> list[DockerSandbox]:
    return [
        await make_sandbox(agent_id=f"dead1-{unique}"),
        await make_sandbox(agent_id=f"dead2-{unique}"),
        await make_sandbox(agent_id=f"live-{unique}"),
    ]


async def test_reap_removes_exactly_the_dead(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient, unique: str
) -> None:
    dead1, dead2, live = await three(make_sandbox, unique)
    await dead2.kill()  # stopped containers are orphans too
    asked: list[str] = []

    async def is_live(agent_id: str) -> bool:
        asked.append(agent_id)
        return agent_id == live.spec.agent_id

    before = reaped_total()
    count = await reap_orphans(docker_client, is_live, owner=live.spec.owner)
    assert count == 2
    assert reaped_total() - before == 2
    assert sorted(asked) == sorted(s.spec.agent_id for s in (dead1, dead2, live))
    assert labelled(docker_client, dead1.spec.agent_id) == []
    assert labelled(docker_client, dead2.spec.agent_id) == []
    assert labelled(docker_client, live.spec.agent_id) == [live.container_id]
    assert (await live.exec("echo still here", timeout=10)).output == "still here\n"
    # A second pass finds nothing more; closing a reaped sandbox is harmless.
    assert await reap_orphans(docker_client, is_live, owner=live.spec.owner) == 0
    await dead1.close()


async def test_unknown_liveness_keeps_the_container(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient, unique: str
) -> None:
    sandbox = await make_sandbox()

    async def is_live(agent_id: str) -> bool:
        raise ConnectionError("valkey away")

    assert await reap_orphans(docker_client, is_live, owner=sandbox.spec.owner) == 0
    assert labelled(docker_client, sandbox.spec.agent_id) == [sandbox.container_id]


async def test_reaper_loop_runs_at_start_and_stops(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient, unique: str
) -> None:
    dead = await make_sandbox(agent_id=f"dead-{unique}")
    stop = asyncio.Event()

    async def is_live(agent_id: str) -> bool:
        return False

    loop = asyncio.create_task(
        run_reaper(docker_client, is_live, interval_s=0.2, owner=dead.spec.owner, stop=stop)
    )
    for _ in range(50):
        if not labelled(docker_client, dead.spec.agent_id):
            break
        await asyncio.sleep(0.1)
    assert labelled(docker_client, dead.spec.agent_id) == []
    stop.set()
    await asyncio.wait_for(loop, 2)
