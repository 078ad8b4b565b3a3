"""Which spawners are alive and whether any can run agents (capability records in Valkey).

Layout: ``<p>:spawners``, a hash of instance name to ``SpawnerCapability`` JSON. Each
spawner writes its own field at start and on every heartbeat with an ``expiresAt`` a
few heartbeats ahead, and deletes it on a clean stop; a record past its expiry is a
spawner that died (SIGKILL, lost host) and does not count. One hash (not a key per
spawner) so the gateway reads every spawner in one round trip, without ``SCAN``.

Clocks: the expiry is written with the spawner's clock and read with the gateway's;
the TTL (three heartbeats by default) absorbs the skew of hosts kept in time by NTP.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import ValidationError
from redis.asyncio import Redis

from shared.errors import MosaicError
from shared.messages.base import utcnow
from shared.messages.spawners import SpawnerCapability

log = logging.getLogger(__name__)


class NoSpawnerReadyError(MosaicError):
    """Spawners are running but none can run an agent; the message says what to fix."""

    code = "no_spawner_ready"
    retryable = True


class SpawnerRegistry:
    """Reads and writes the capability records under one key prefix."""

    def __init__(self, redis: Redis, prefix: str = "mosaic") -> None:
        self._redis = redis
        self._key = f"{prefix}:spawners"

    async def publish(self, capability: SpawnerCapability, ttl_s: float) -> SpawnerCapability:
        """Write (or refresh) this spawner's record, valid for ``ttl_s`` from now."""
        fresh = capability.model_copy(update={"expires_at": utcnow() + timedelta(seconds=ttl_s)})
        await self._redis.hset(self._key, capability.instance, fresh.model_dump_json())
        return fresh

    async def withdraw(self, instance: str) -> None:
        """Remove this spawner's record (clean stop)."""
        await self._redis.hdel(self._key, instance)

    async def all(self) -> list[SpawnerCapability]:
        """Every record, live or expired (unreadable ones are skipped)."""
        raw = await self._redis.hgetall(self._key)
        out: list[SpawnerCapability] = []
        for name, value in raw.items():
            try:
                out.append(SpawnerCapability.model_validate_json(value))
            except ValidationError:
                log.warning("unreadable capability record of %r", name)
        return sorted(out, key=lambda c: c.instance)

    async def live(self) -> list[SpawnerCapability]:
        """The records of spawners whose heartbeat has not expired, by instance name."""
        now = utcnow()
        return [c for c in await self.all() if c.expires_at > now]

    async def prune(self, expired_for_s: float) -> int:
        """Delete records expired for longer than ``expired_for_s`` (dead spawners);
        long enough that a live spawner's next heartbeat cannot race the delete."""
        cutoff = utcnow() - timedelta(seconds=expired_for_s)
        dead = [c.instance for c in await self.all() if c.expires_at < cutoff]
        if dead:
            await self._redis.hdel(self._key, *dead)
        return len(dead)


def why_not_ready(spawners: list[SpawnerCapability]) -> str | None:
    """None when a live spawner is ready, or when none has registered yet (a task
    queued then waits for the first spawner, as the queue always allowed); otherwise
    what every spawner lacks, each problem said once."""
    if not spawners or any(s.ready for s in spawners):
        return None
    problems: list[str] = []
    for spawner in spawners:
        for problem in spawner.problems or ["not ready (no reason given)"]:
            if problem not in problems:
                problems.append(problem)
    return "no spawner can run agents: " + "; ".join(problems)
