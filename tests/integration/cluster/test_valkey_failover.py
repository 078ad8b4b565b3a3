"""The store through Sentinel (``VALKEY_SENTINELS``) while the Valkey primary is SIGKILLed:
the command that hit the switch is retried on the promoted replica, no call fails; and
the gap an asynchronous replica can lose, measured with a writer that pipelines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis as SyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError

from mosaic.valkeyha import (
    ValkeyReplicaSet,
    current_primary,
    promoted_primary,
    start_valkey_replica_set,
)
from shared.bus import make_valkey
from shared.settings import ValkeySettings
from shared.store import StateStore
from tests.integration.test_store import make_record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.serial]


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ValkeyReplicaSet]:
    started = start_valkey_replica_set(tmp_path, "pw-failover")
    yield started
    started.stop()


def primary_of(group: ValkeyReplicaSet) -> tuple[str, int]:
    return asyncio.run(current_primary(group))


async def test_store_writes_go_on_through_a_failover(group: ValkeyReplicaSet) -> None:
    settings = ValkeySettings(valkey_url=group.url, valkey_sentinels=group.sentinel_addresses)
    redis = make_valkey(settings)
    store = StateStore(redis, prefix="failover")
    old = await current_primary(group)
    written: list[str] = []
    slowest = 0.0
    try:
        for i in range(400):
            if i == 100:
                next(s for s in group.data if s.port == old[1]).kill()
            started = time.monotonic()
            await store.create_agent(make_record(f"a{i}", f"t{i}"))  # raises if retries ran out
            slowest = max(slowest, time.monotonic() - started)
            written.append(f"a{i}")
            await asyncio.sleep(0.005)
        new = await current_primary(group)
        assert new != old
        after = [a for a in written[100:] if await store.get_agent(a) is None]
        assert after == []  # everything written after the switch is on the new primary
        print(f"\nstore write that hit the failover took {slowest:.1f}s (retried, not failed)")
    finally:
        await redis.aclose()


def test_the_gap_a_pipelining_writer_loses_is_measured(group: ValkeyReplicaSet) -> None:
    host, port = primary_of(group)
    victim = next(s for s in group.data if s.port == port)
    client = SyncRedis(host=host, port=port, password=group.password, socket_timeout=2)
    acked = 0
    batch = 200
    killed = False
    started = time.monotonic()
    try:
        while True:
            pipe = client.pipeline(transaction=False)
            for i in range(acked, acked + batch):
                pipe.set(f"gap:{i}", "1")
            pipe.execute()
            acked += batch
            if not killed and time.monotonic() - started > 0.5:
                victim.kill()  # next batch dies with it
                killed = True
    except (RedisConnectionError, OSError):
        pass
    finally:
        client.close()
    new = asyncio.run(promoted_primary(group, (host, port), 30))
    promoted = SyncRedis(host=new[0], port=new[1], password=group.password)
    try:
        pipe = promoted.pipeline(transaction=False)
        for i in range(acked):
            pipe.exists(f"gap:{i}")
        missing = sum(1 for found in pipe.execute() if not found)
    finally:
        promoted.close()
    print(
        f"\nValkey failover, pipelining writer ({batch} a round trip): {missing} of {acked} "
        "acknowledged writes missing on the promoted replica"
    )
    assert acked > 0
