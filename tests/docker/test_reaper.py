"""The orphan reaper removes exactly the containers of agents that are no longer live."""

from __future__ import annotations

import asyncio

import docker
import pytest
from prometheus_client import REGISTRY

from shared.sandbox.containers import containers_by_agent, remove_agent_containers
from shared.sandbox.docker import DockerSandbox
from shared.sandbox.reaper import reap_orphans, run_reaper

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


async def test_reapers_leave_another_systems_containers_alone(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient, unique: str
) -> None:
    """Two Mosaic systems on one daemon: neither reaper touches the other's live sandbox.

    The regression behind agents that completed without their change: a second system's
    killswitch (or spawner) reaper found this system's running sandboxes, could not find
    their agents in its own Valkey, and removed them mid-run.
    """
    ours = await make_sandbox(agent_id=f"ours-{unique}", deployment=f"sys-a-{unique}")
    theirs = await make_sandbox(agent_id=f"theirs-{unique}", deployment=f"sys-b-{unique}")

    async def unknown(agent_id: str) -> bool:  # another system's Valkey knows none of ours
        return False

    # the spawner's reaper of system b
    assert await reap_orphans(docker_client, unknown, deployment=f"sys-b-{unique}") == 1
    assert labelled(docker_client, theirs.spec.agent_id) == []
    assert labelled(docker_client, ours.spec.agent_id) == [ours.container_id]
    # the killswitch's view of system b (its stopper and reaper use these)
    assert ours.spec.agent_id not in containers_by_agent(docker_client, f"sys-b-{unique}")
    assert remove_agent_containers(docker_client, ours.spec.agent_id, f"sys-b-{unique}") == 0
    assert containers_by_agent(docker_client, f"sys-a-{unique}") == {
        ours.spec.agent_id: [ours.container_id]
    }
    assert (await ours.exec("echo still here", timeout=10)).output == "still here\n"
    await theirs.close()


async def test_a_retry_replaces_only_its_own_systems_container(
    make_sandbox: MakeSandbox, docker_client: docker.DockerClient, unique: str
) -> None:
    agent_id = f"same-id-{unique}"
    other = await make_sandbox(agent_id=agent_id, deployment=f"sys-b-{unique}")
    first = await make_sandbox(agent_id=agent_id, deployment=f"sys-a-{unique}")
    retry = await make_sandbox(agent_id=agent_id, deployment=f"sys-a-{unique}")
    assert sorted(labelled(docker_client, agent_id)) == sorted(
        [other.container_id, retry.container_id]
    )
    assert first.container_id not in labelled(docker_client, agent_id)
    assert (await other.exec("echo alive", timeout=10)).output == "alive\n"
