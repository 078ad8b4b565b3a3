"""The merge queue's order: one Valkey list per (repository, base branch), with leases.

An agent joins at the back (``RPUSH``) and holds the queue when it is first; it leaves
when its merge is done, its change goes back to it, or its run ends (the caller's
``finally``). Each entry has a lease key (``SET … PX``) that its spawner renews every
third of the lease while the agent waits or integrates; whoever reads the queue drops
entries whose lease expired first (one Lua script, so reading and pruning are one
step). A holder whose spawner died therefore blocks the queue for at most one lease.

Keys (``<p>`` is the state prefix)::

    <p>:mergequeue:<sha256(repository)[:16]>:<base>   list of agent ids, in order
    <p>:mergequeue:lease:<agentId>                    "1" with a TTL (an agent is in at
                                                      most one queue at a time)

The scripts name lease keys they build from the list's entries, so this needs a
standalone Valkey (not cluster mode), as the rest of the state store does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from shared.store import StateStore

log = logging.getLogger(__name__)

_POSITION = """
local position = 0
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', ARGV[1] .. entry) == 0 then
    redis.call('LREM', KEYS[1], 0, entry)
  else
    position = position + 1
    if entry == ARGV[2] then return position end
  end
end
return 0
"""

_JOIN = (
    """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
if not redis.call('LPOS', KEYS[1], ARGV[2]) then redis.call('RPUSH', KEYS[1], ARGV[2]) end
"""
    + _POSITION
)
"""Take the lease, queue at the back unless queued, and answer the position: one step, so
a process slower than the lease between two calls can still never read itself as gone."""

_LEAVE = """
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""

PositionSink = Callable[[int], Awaitable[None]]
"""Told each new position while waiting (1: this agent's turn)."""


class MergeQueue:
    """Order and leases of merge-queue entries in Valkey (safe to share across tasks)."""

    def __init__(self, store: StateStore, *, lease_s: float = 30.0, poll_s: float = 0.5) -> None:
        redis = store.redis
        self._redis = redis
        self._key = store.key
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._join = redis.register_script(_JOIN)
        self._position = redis.register_script(_POSITION)
        self._leave = redis.register_script(_LEAVE)

    def queue_key(self, repository: str, base_branch: str) -> str:
        """The list of one repository's queue into ``base_branch``."""
        digest = hashlib.sha256(repository.encode()).hexdigest()[:16]
        return self._key("mergequeue", digest, base_branch)

    def _lease_prefix(self) -> str:
        return self._key("mergequeue", "lease", "")

    def _lease_key(self, agent_id: str) -> str:
        return f"{self._lease_prefix()}{agent_id}"

    async def join(self, queue: str, agent_id: str) -> int:
        """Take a lease and a place at the back (kept if already queued); the position."""
        found = await self._join(
            keys=[queue, self._lease_key(agent_id)],
            args=[self._lease_prefix(), agent_id, int(self.lease_s * 1000)],
        )
        return int(found)

    async def renew(self, agent_id: str) -> bool:
        """Extend the lease, taking it again if it had expired (then False: the entry may
        be gone already, and the waiting loop joins again; if it is still there it keeps
        its place instead of being dropped at the next read)."""
        previous = await self._redis.set(
            self._lease_key(agent_id), "1", px=int(self.lease_s * 1000), get=True
        )
        return previous is not None

    async def position(self, queue: str, agent_id: str) -> int:
        """1-based place of ``agent_id`` after dropping expired entries; 0 when not queued."""
        found = await self._position(keys=[queue], args=[self._lease_prefix(), agent_id])
        return int(found)

    async def entries(self, queue: str) -> list[str]:
        """The queue as stored (expired entries included until someone reads a position)."""
        raw = await self._redis.lrange(queue, 0, -1)
        return [item.decode() if isinstance(item, bytes) else str(item) for item in raw]

    async def leave(self, queue: str, agent_id: str) -> None:
        """Remove the entry and its lease (idempotent)."""
        await self._leave(keys=[queue, self._lease_key(agent_id)], args=[agent_id])

    @contextlib.asynccontextmanager
    async def turn(
        self, queue: str, agent_id: str, on_position: PositionSink
    ) -> AsyncIterator[None]:
        """Join, wait until first, hold the queue for the body, leave whatever happens.

        The lease is renewed in the background from joining to leaving; an entry that
        lost its lease (this process stalled past it) joins again at the back.
        """
        await self.join(queue, agent_id)
        heartbeat = asyncio.create_task(self._heartbeat(agent_id))
        try:
            shown = -1
            while True:
                position = await self.position(queue, agent_id)
                if position == 0:
                    log.warning(
                        "merge-queue lease lost; joining again", extra={"agent_id": agent_id}
                    )
                    position = await self.join(queue, agent_id)
                if position != shown:
                    shown = position
                    await on_position(position)
                if position == 1:
                    break
                await asyncio.sleep(self.poll_s)
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await asyncio.shield(self.leave(queue, agent_id))

    async def _heartbeat(self, agent_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self.renew(agent_id):
                    log.warning("merge-queue lease had expired", extra={"agent_id": agent_id})
            except Exception:
                log.warning("could not renew the merge-queue lease", exc_info=True)
