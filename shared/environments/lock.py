"""One builder per environment key, across every spawner sharing a Valkey.

``SET key token NX PX ttl`` takes the lock; the holder refreshes it every third of the
ttl while it builds and deletes it after (both only while the value is still its token,
so a holder that stalled past its ttl cannot free someone else's lock). A builder that
dies stops refreshing and the key expires: a waiter takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from redis.asyncio import Redis

log = logging.getLogger(__name__)

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class BuildLock:
    """The lock on one key; ``acquire`` does not wait, ``held_elsewhere`` looks."""

    def __init__(self, redis: Redis, key: str, ttl_s: float) -> None:
        self._redis = redis
        self.key = key
        self._ttl_ms = max(int(ttl_s * 1000), 100)
        self._token = secrets.token_hex(16)

    async def acquire(self) -> bool:
        """Take the lock if it is free."""
        return bool(await self._redis.set(self.key, self._token, nx=True, px=self._ttl_ms))

    async def held_elsewhere(self) -> bool:
        """Whether another builder holds it now."""
        value = await self._redis.get(self.key)
        if value is None:
            return False
        return (value.decode() if isinstance(value, bytes) else value) != self._token

    async def release(self) -> None:
        """Free the lock if it is still ours."""
        await self._redis.eval(_RELEASE, 1, self.key, self._token)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                kept = await self._redis.eval(_REFRESH, 1, self.key, self._token, self._ttl_ms)
            except Exception:  # Valkey away for a moment: try again at the next tick
                log.warning("could not refresh the build lock %s", self.key, exc_info=True)
                continue
            if not kept:
                log.warning("build lock %s was lost; another builder may start", self.key)

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """Keep the (acquired) lock alive for the body, release it after."""
        refresher = asyncio.create_task(self._refresh())
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            with contextlib.suppress(Exception):
                await asyncio.shield(self.release())
