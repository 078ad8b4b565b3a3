"""Who owns which federated agent.

On the spoke (the instance that runs the agent):

- ``<p>:federation:owner:<agentId>``  the peer id that spawned it
- ``<p>:federation:peer:<peerId>:agents``  set of the agent ids that peer spawned here

On the hub (the instance that asked):

- ``<p>:federation:remote``  hash ``<peerId>/<agentId>`` → JSON ``RemoteAgent``
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from redis.asyncio import Redis

from shared.messages.base import Message, utcnow


class RemoteAgent(Message):
    """An agent this instance spawned on a peer, with its last known state."""

    peer_id: str
    agent_id: str
    task_id: str
    repository: str = ""
    state: str = "spawning"
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    error: str | None = None
    pushed_branch: str | None = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def owner_key(prefix: str, agent_id: str) -> str:
    """Where the spoke records which peer spawned ``agent_id`` (the store reads it to
    count a peer's spend: ``StateStore.charge``)."""
    return ":".join((prefix, "federation", "owner", agent_id))


class Ownership:
    """The spoke's record of which peer spawned which agent."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, "federation", *parts))

    async def record(self, peer_id: str, agent_id: str) -> None:
        """Note that ``peer_id`` spawned ``agent_id`` here."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(owner_key(self._prefix, agent_id), peer_id)
            pipe.sadd(self._key("peer", peer_id, "agents"), agent_id)
            await pipe.execute()

    async def owner_of(self, agent_id: str) -> str | None:
        """The peer that spawned ``agent_id`` here, if a peer did."""
        value = await self._redis.get(owner_key(self._prefix, agent_id))
        return _text(value) if value is not None else None

    async def agents_of(self, peer_id: str) -> list[str]:
        """Every agent ``peer_id`` spawned here."""
        return sorted(
            _text(i) for i in await self._redis.smembers(self._key("peer", peer_id, "agents"))
        )


class RemoteAgents:
    """The hub's record of agents it spawned on peers."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._key = ":".join((prefix, "federation", "remote"))

    async def put(self, agent: RemoteAgent) -> None:
        """Store or update one remote agent."""
        await self._redis.hset(
            self._key, f"{agent.peer_id}/{agent.agent_id}", agent.model_dump_json()
        )

    async def get(self, peer_id: str, agent_id: str) -> RemoteAgent | None:
        """One remote agent, if this instance spawned it."""
        raw = await self._redis.hget(self._key, f"{peer_id}/{agent_id}")
        return RemoteAgent.model_validate_json(raw) if raw is not None else None

    async def list(self, peer_id: str | None = None) -> list[RemoteAgent]:
        """Remote agents (of one peer, or all), newest first."""
        raw = await self._redis.hgetall(self._key)
        agents = [RemoteAgent.model_validate_json(v) for v in raw.values()]
        if peer_id is not None:
            agents = [a for a in agents if a.peer_id == peer_id]
        return sorted(agents, key=lambda a: a.created_at, reverse=True)
