"""Warm docker sandboxes (``shared.sandbox.warmpool``) against a real daemon.

A repository's first agent teaches the pool its shape; the pool makes containers on empty
slot directories; the next agent's directory is placed (the slot renamed to it) before
its files exist, and its sandbox, claimed, sees what was written there afterwards, as
its own user, under its own name. A spec that differs gets a cold container; what is
placed and not claimed goes; kill-all's drain, the reaper and the killswitch's lookup
all see warm containers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import NotFound

from shared.sandbox.base import SandboxSpec
from shared.sandbox.containers import (
    LABEL_WARM,
    SLOT_PREFIX,
    agent_containers,
    claimed_name,
    containers_by_agent,
)
from shared.sandbox.docker import DockerSandbox, DockerSandboxFactory
from shared.sandbox.reaper import reap_orphans
from shared.sandbox.settings import SandboxSettings
from shared.sandbox.warmpool import WarmPool

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]


@pytest.fixture
async def pool_factory(
    docker_client: docker.DockerClient, sandbox_image: str
) -> AsyncIterator[DockerSandboxFactory]:
    settings = SandboxSettings(image=sandbox_image, exec_grace_s=3.0, warm=2, warm_max_age_s=60)
    factory = DockerSandboxFactory(docker_client, settings)
    factory.start_warm_pool()
    yield factory
    assert factory.warm is not None
    await factory.warm.close()


def warm_of(client: docker.DockerClient, owner: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.api.containers(
        all=True, filters={"label": [LABEL_WARM, f"mosaic.owner={owner}"]}
    )
    return found


async def until(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def spec_of(root: Path, agent: str, owner: str, **fields: Any) -> SandboxSpec:
    return SandboxSpec(
        agent_id=agent, task_id="t1", worktree=root / f"agent-{agent}-t1", owner=owner, **fields
    )


def make_repository(path: Path, text: str) -> None:
    """What gitops does: the files made in the (maybe placed) directory."""
    path.mkdir(exist_ok=True)
    (path / "note.txt").write_text(text)


async def first_agent(factory: DockerSandboxFactory, root: Path, unique: str) -> DockerSandbox:
    """A repository's first agent: nothing to place; its cold sandbox teaches the shape."""
    pool = factory.warm
    assert pool is not None
    spec = spec_of(root, f"first-{unique}", f"warm-{unique}")
    assert await pool.place(spec.worktree) is False
    make_repository(spec.worktree, "first")
    sandbox = await factory.create(spec)
    assert sandbox.warm is False
    return sandbox


@dataclass
class Learned:
    """A pool that learned the repository (``tmp_path``) from its first agent, full."""

    pool: WarmPool
    first: DockerSandbox
    owner: str

    def waiting(self, client: docker.DockerClient) -> set[str]:
        """Ids of this test's warm containers no agent claimed."""
        return {c["Id"] for c in warm_of(client, self.owner)}


@pytest.fixture
async def learned(
    pool_factory: DockerSandboxFactory, tmp_path: Path, unique: str
) -> AsyncIterator[Learned]:
    pool = pool_factory.warm
    assert pool is not None
    first = await first_agent(pool_factory, tmp_path, unique)
    await until(lambda: pool.idle() == 2)
    yield Learned(pool, first, f"warm-{unique}")
    await first.close()


async def test_a_placed_warm_container_becomes_the_next_agents(
    pool_factory: DockerSandboxFactory, learned: Learned, docker_client: docker.DockerClient,
    tmp_path: Path, unique: str,
) -> None:  # fmt: skip
    pool, first, owner = learned.pool, learned.first, learned.owner
    slots = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(SLOT_PREFIX))
    assert len(slots) == 2
    assert len(warm_of(docker_client, owner)) == 2

    agent = f"second-{unique}"
    spec = spec_of(tmp_path, agent, owner)
    assert await pool.place(spec.worktree) is True
    assert spec.worktree.is_dir()
    assert not any(spec.worktree.iterdir())  # the slot, renamed
    make_repository(spec.worktree, "written after the container started")
    started = time.perf_counter()
    sandbox = await pool_factory.create(spec)
    took = time.perf_counter() - started
    print(f"\nwarm claim: {took * 1000:.1f} ms")
    try:
        assert sandbox.warm is True
        result = await sandbox.exec("cat note.txt; echo; id -u; touch made-inside", timeout=20)
        uid = sandbox.user.split(":")[0]
        assert result.output == f"written after the container started\n{uid}\n"
        assert (spec.worktree / "made-inside").exists()
        # what was made in it after the container started is the sandbox user's too
        assert (spec.worktree / "note.txt").stat().st_uid == int(uid)
        info = docker_client.api.inspect_container(sandbox.container_id)
        sandbox_id = info["Config"]["Labels"]["mosaic.sandbox_id"]
        assert info["Name"] == "/" + claimed_name(agent, sandbox_id)
        # hardened like a cold one: the same settings, only name, labels and mounts differ
        cold = docker_client.api.inspect_container(first.container_id)["HostConfig"]
        warm = info["HostConfig"]
        for key in ("ReadonlyRootfs", "CapDrop", "SecurityOpt", "NetworkMode", "Memory",
                    "NanoCpus", "PidsLimit", "Ulimits", "IpcMode", "Init", "Tmpfs"):  # fmt: skip
            assert warm[key] == cold[key], key
        # whoever ends an agent without its spawner finds it by the agent's id
        assert agent_containers(docker_client, agent) == [sandbox.container_id]
        assert containers_by_agent(docker_client)[agent] == [sandbox.container_id]
        await until(lambda: pool.idle() == 2)  # refilled
    finally:
        await sandbox.close()
    assert agent_containers(docker_client, agent) == []


async def test_a_spec_that_does_not_fit_is_made_cold_and_the_placed_one_goes(
    pool_factory: DockerSandboxFactory, learned: Learned, docker_client: docker.DockerClient,
    tmp_path: Path, unique: str,
) -> None:  # fmt: skip
    before = learned.waiting(docker_client)
    spec = spec_of(tmp_path, f"net-{unique}", learned.owner, network=True)
    assert await learned.pool.place(spec.worktree) is True
    make_repository(spec.worktree, "x")
    sandbox = await pool_factory.create(spec)
    try:
        assert sandbox.warm is False
        info = docker_client.api.inspect_container(sandbox.container_id)
        assert info["HostConfig"]["NetworkMode"] == "bridge"  # what the spec asked, not the pool

        # the placed one goes; the other stays warm
        await until(lambda: len(before - learned.waiting(docker_client)) == 1)
        assert (spec.worktree / "note.txt").read_text() == "x"  # the directory was kept
    finally:
        await sandbox.close()


async def test_placed_and_never_claimed_goes_and_the_directory_stays(
    learned: Learned, docker_client: docker.DockerClient, tmp_path: Path, unique: str
) -> None:
    before = learned.waiting(docker_client)
    spec = spec_of(tmp_path, f"gone-{unique}", learned.owner)
    assert await learned.pool.place(spec.worktree) is True
    learned.pool.release(spec.worktree)  # the attempt ended before its sandbox step
    await until(lambda: len(before - learned.waiting(docker_client)) == 1)
    assert spec.worktree.is_dir()  # gitops removes the repository, not the pool


async def test_drain_removes_every_idle_container_and_its_slot(
    learned: Learned, docker_client: docker.DockerClient, tmp_path: Path, unique: str
) -> None:
    pool = learned.pool
    assert await pool.drain() == 2
    assert learned.waiting(docker_client) == set()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(SLOT_PREFIX)]
    # a refill under way when a drain comes is removed when it is made
    spec = spec_of(tmp_path, f"after-{unique}", learned.owner)
    await pool.place(spec.worktree)  # a miss, which starts a refill
    await pool.drain()
    await pool.close()  # waits for the refill: made after the drain, so removed
    assert pool.idle() == 0
    assert learned.waiting(docker_client) == set()


async def test_the_reaper_removes_a_lost_pools_containers_and_a_dead_agents_claimed_one(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path, unique: str
) -> None:
    settings = SandboxSettings(image=sandbox_image, warm=2, warm_max_age_s=0.5)
    factory = DockerSandboxFactory(docker_client, settings)
    pool = WarmPool(factory, size=2, limit=4, max_age_s=60)  # no expiry of its own: "lost"
    factory.warm = pool
    owner = f"warm-{unique}"
    first = await first_agent(factory, tmp_path, unique)
    try:
        await until(lambda: pool.idle() == 2)
        live_agent, dead_agent = f"live-{unique}", f"dead-{unique}"
        claimed: dict[str, DockerSandbox] = {}
        for agent in (live_agent, dead_agent):
            spec = spec_of(tmp_path, agent, owner)
            assert await pool.place(spec.worktree) is True
            make_repository(spec.worktree, agent)
            claimed[agent] = await factory.create(spec)
            assert claimed[agent].warm
        await until(lambda: pool.idle() == 2)
        idle = [c for c in warm_of(docker_client, owner) if "mosaic-warm." not in str(c["Names"])]
        assert len(idle) == 2
        await asyncio.sleep(1.1)  # older than twice the reaper's max age

        async def is_live(agent_id: str) -> bool:
            return agent_id in (live_agent, first.spec.agent_id)

        count = await reap_orphans(docker_client, is_live, owner=owner, warm_max_age_s=0.5)
        assert count == 3  # the dead agent's, and the two the pool lost
        assert agent_containers(docker_client, dead_agent) == []
        assert agent_containers(docker_client, live_agent) == [claimed[live_agent].container_id]
        for info in idle:
            with pytest.raises(NotFound):
                docker_client.api.inspect_container(info["Id"])
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(SLOT_PREFIX)]
        assert (tmp_path / f"agent-{dead_agent}-t1" / "note.txt").exists()  # not the reaper's
    finally:
        for sandbox in claimed.values():
            await sandbox.close()
        await first.close()
        await pool.close()


async def test_a_retry_replaces_the_earlier_attempts_warm_container(
    pool_factory: DockerSandboxFactory, learned: Learned, docker_client: docker.DockerClient,
    tmp_path: Path, unique: str,
) -> None:  # fmt: skip
    """One container per agent: an attempt whose spawner died left its claimed warm
    container; the retry's (warm again, or cold) replaces it."""
    pool = learned.pool
    agent = f"retried-{unique}"
    made: list[DockerSandbox] = []
    try:
        for task in ("t1", "t2"):  # the second attempt gets a fresh repository here
            await until(lambda: pool.idle() == 2)
            spec = SandboxSpec(
                agent_id=agent, task_id=task, worktree=tmp_path / f"agent-{agent}-{task}",
                owner=learned.owner,
            )  # fmt: skip
            assert await pool.place(spec.worktree) is True
            make_repository(spec.worktree, task)
            made.append(await pool_factory.create(spec))
            assert made[-1].warm
        assert agent_containers(docker_client, agent) == [made[-1].container_id]
        again = SandboxSpec(
            agent_id=agent,
            task_id="t3",
            worktree=made[-1].spec.worktree,
            owner=learned.owner,
            network=True,  # a shape no warm container has: made cold
        )
        cold = await pool_factory.create(again)
        made.append(cold)
        assert agent_containers(docker_client, agent) == [cold.container_id]
    finally:
        for sandbox in made:
            await sandbox.close()
