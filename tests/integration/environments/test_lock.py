"""The build lock in a real Valkey: one holder, kept alive while it works, freed after,
and free again when a holder dies without releasing."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from shared.environments.lock import BuildLock

pytestmark = pytest.mark.integration


async def test_one_holder_at_a_time(redis: Redis, unique: str) -> None:
    key = f"t{unique}:lock"
    first, second = BuildLock(redis, key, 5), BuildLock(redis, key, 5)
    assert await first.acquire()
    assert not await second.acquire()
    assert await second.held_elsewhere()
    assert not await first.held_elsewhere()
    await second.release()  # not its lock: nothing happens
    assert await redis.exists(key)
    await first.release()
    assert await second.acquire()
    await second.release()


async def test_the_holder_keeps_it_past_its_ttl_and_frees_it_after(
    redis: Redis, unique: str
) -> None:
    key = f"t{unique}:lock"
    holder, waiter = BuildLock(redis, key, 0.3), BuildLock(redis, key, 0.3)
    assert await holder.acquire()
    async with holder.holding():
        await asyncio.sleep(1.0)  # three ttls: refreshed all along
        assert not await waiter.acquire()
    assert not await redis.exists(key)
    assert await waiter.acquire()


async def test_a_holder_that_dies_frees_the_key_within_the_ttl(redis: Redis, unique: str) -> None:
    key = f"t{unique}:lock"
    dead, waiter = BuildLock(redis, key, 0.3), BuildLock(redis, key, 0.3)
    assert await dead.acquire()  # and never refreshes nor releases
    assert not await waiter.acquire()
    await asyncio.sleep(0.5)
    assert await waiter.acquire()
