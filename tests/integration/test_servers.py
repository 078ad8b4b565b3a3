"""The embedded servers really run: NATS with JetStream, Valkey answering."""

from __future__ import annotations

import nats
import pytest
from redis.asyncio import Redis

pytestmark = pytest.mark.integration


async def test_nats_jetstream_answers(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    info = await nc.jetstream().account_info()
    assert info.limits is not None
    await nc.close()


async def test_valkey_answers(redis: Redis) -> None:
    assert await redis.ping()
