"""The spawn's intake checks against a real gitops over real NATS: a repository path
gitops found is remembered for a moment (a burst of spawns asks once); a path it did not
find is asked about every time, so a refusal always names the present state."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from services.gateway.intake import PATH_TTL_S, IntakeChecks, RepositoryMissingError
from services.gitops.app import create_app as create_gitops
from shared.bus import make_broker
from shared.settings import HomeSettings, HostSettings, NatsSettings
from shared.spawners import NoSpawnerReadyError, SpawnerRegistry
from tests.integration.gateway.test_spawner_readiness import capability

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Clock:
    """Time the test moves by hand (the remembered answers' expiry)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[NatsBroker]:
    """The gateway's side of the bus, with a real gitops answering beside it."""
    with tempfile.TemporaryDirectory(prefix="intake-gitops-") as home:
        gitops = create_gitops(
            NatsSettings(nats_url=nats_url),
            HomeSettings(mosaic_home=Path(home)),
            host=HostSettings(mosaic_host_id="intake-test"),
        )
        assert gitops.broker is not None
        async with gitops.broker:
            await gitops.broker.start()
            asker = make_broker(NatsSettings(nats_url=nats_url), "intake-test")
            await asker.start()
            try:
                yield asker
            finally:
                await asker.stop()


async def test_a_found_path_is_remembered_briefly_and_a_missing_one_never(
    broker: NatsBroker, redis: Redis, unique: str, tmp_path: Path, remote_repo: Path
) -> None:
    clock = Clock()
    checks = IntakeChecks(SpawnerRegistry(redis, f"t{unique}"), broker, 10.0, clock=clock)
    moved = tmp_path / "moved.git"
    await checks.require_repository(str(remote_repo))
    shutil.move(remote_repo, moved)
    await checks.require_repository(str(remote_repo))  # remembered: gitops not asked
    clock.now += PATH_TTL_S + 0.1
    with pytest.raises(RepositoryMissingError, match="no repository at"):
        await checks.require_repository(str(remote_repo))
    shutil.move(moved, remote_repo)  # back: the refusal was not remembered
    await checks.require_repository(str(remote_repo))


async def test_readiness_is_read_every_time(broker: NatsBroker, redis: Redis, unique: str) -> None:
    spawners = SpawnerRegistry(redis, f"t{unique}")
    checks = IntakeChecks(spawners, broker, 10.0)
    await checks.require_ready()  # no spawner at all: the task would wait in the queue
    await spawners.publish(capability("spawner-a", ready=True), ttl_s=30)
    await checks.require_ready()
    await spawners.publish(capability("spawner-a", ready=False), ttl_s=30)
    with pytest.raises(NoSpawnerReadyError):
        await checks.require_ready()
