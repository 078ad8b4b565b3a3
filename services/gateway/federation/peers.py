"""The peer registry in Valkey: who may talk to this instance, with which key and limits.

Keys (``<p>`` is the store prefix):

- ``<p>:federation:peer:<peerId>``  hash: ``data`` (the ``Peer`` as JSON), and ``state``,
  ``updatedAt``, ``activatedAt`` kept apart so a state change is one small script
- ``<p>:federation:peers``  set of registered peer ids

A peer is ``pending`` when registered, ``active`` after a signed handshake, and can be
``suspended`` or ``revoked`` by an admin. Only ``active`` peers' commands are executed.
State changes are one Lua script each (check the current state, write the new one).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints
from redis.asyncio import Redis

from shared.federation.errors import PeerStateError, UnknownPeerError
from shared.federation.identity import decode_public_key
from shared.messages.base import Message, utcnow


class PeerState(StrEnum):
    """``pending → active ⇄ suspended``; any state ``→ revoked`` (final)."""

    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


def _check_key(value: str) -> str:
    decode_public_key(value)
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL of the peer's gateway")
    return value.rstrip("/")


PublicKey = Annotated[str, StringConstraints(max_length=64), AfterValidator(_check_key)]
PeerUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_check_url)]
PeerId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")]
RepoPattern = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class PeerLimits(Message):
    """What a peer may do here: concurrent agents, which repositories, daily spend.

    ``allowedRepositories`` entries are globs (``*``, ``?``, ``[...]``; ``*`` also
    matches ``/``) or, without glob characters, a prefix that matches the repository
    itself or anything under it (``/srv/repos`` matches ``/srv/repos/shop.git``). An
    empty list allows nothing.
    """

    max_agents: int = Field(default=5, ge=0, le=10_000)
    allowed_repositories: Annotated[list[RepoPattern], Field(max_length=100)] = []
    max_usd_per_day: float | None = Field(default=None, gt=0, le=10_000_000)
    """The most this peer's agents may spend here in one UTC day (their reviewers'
    calls included); once reached, its spawns are refused until the next day. Unset: no
    limit of its own (the deployment's ``MOSAIC_BUDGET_USD_PER_DAY`` still applies)."""

    def allows_repository(self, repository: str) -> bool:
        """Whether ``repository`` matches one of the allowed patterns."""
        target = normalise_repository(repository)
        if target is None:
            return False
        for pattern in self.allowed_repositories:
            if any(c in pattern for c in "*?["):
                if fnmatch.fnmatchcase(target, pattern):
                    return True
                continue
            prefix = pattern.rstrip("/")
            if target == prefix or target.startswith(prefix + "/"):
                return True
        return False


def normalise_repository(repository: str) -> str | None:
    """The repository as matched against patterns; None if it climbs with ``..``."""
    segments = repository.replace("\\", "/").split("/")
    if ".." in segments:
        return None
    if repository.startswith("/"):
        return posixpath.normpath(repository)
    return repository


class Peer(Message):
    """A registered peer: its id, gateway URL, pinned public key, state and limits."""

    peer_id: PeerId
    url: PeerUrl
    public_key: PublicKey
    state: PeerState = PeerState.PENDING
    limits: PeerLimits = PeerLimits()
    registered_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    activated_at: datetime | None = None


_SET_STATE = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {-1, ''} end
local ok = false
for _, s in ipairs(cjson.decode(ARGV[1])) do if current == s then ok = true end end
if not ok then return {0, current} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updatedAt', ARGV[3])
if ARGV[2] == 'active' then redis.call('HSET', KEYS[1], 'activatedAt', ARGV[3]) end
return {1, current}
"""

SOURCES: dict[PeerState, tuple[PeerState, ...]] = {
    PeerState.PENDING: (),
    PeerState.ACTIVE: (PeerState.PENDING, PeerState.ACTIVE, PeerState.SUSPENDED),
    PeerState.SUSPENDED: (PeerState.ACTIVE, PeerState.PENDING),
    PeerState.REVOKED: (
        PeerState.PENDING,
        PeerState.ACTIVE,
        PeerState.SUSPENDED,
        PeerState.REVOKED,
    ),
}
"""The states each state may be entered from (``pending`` only by registering)."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class PeerRegistry:
    """Registered peers in Valkey; safe to share across tasks."""

    def __init__(self, redis: Redis, prefix: str = "mosaic") -> None:
        self._redis = redis
        self._prefix = prefix
        self._set_state = redis.register_script(_SET_STATE)

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, "federation", *parts))

    async def register(self, peer: Peer) -> tuple[Peer, PeerState | None]:
        """Store ``peer`` as ``pending`` (a re-registration replaces key, URL and limits).

        Returns the stored peer and the state it had before, if any.
        """
        previous = await self.get(peer.peer_id)
        now = utcnow()
        stored = peer.model_copy(
            update={
                "state": PeerState.PENDING,
                "registered_at": previous.registered_at if previous else now,
                "updated_at": now,
                "activated_at": None,
            }
        )
        key = self._key("peer", peer.peer_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(
                key,
                mapping={
                    "data": stored.model_dump_json(),
                    "state": stored.state.value,
                    "updatedAt": now.isoformat(),
                },
            )
            pipe.sadd(self._key("peers"), peer.peer_id)
            await pipe.execute()
        return stored, previous.state if previous else None

    async def get(self, peer_id: str) -> Peer | None:
        """The peer, or None."""
        raw = {
            _text(k): _text(v)
            for k, v in (await self._redis.hgetall(self._key("peer", peer_id))).items()
        }
        if "data" not in raw:
            return None
        peer = Peer.model_validate_json(raw["data"])
        return peer.model_copy(
            update={
                "state": PeerState(raw.get("state", peer.state.value)),
                "updated_at": datetime.fromisoformat(raw["updatedAt"])
                if "updatedAt" in raw
                else peer.updated_at,
                "activated_at": datetime.fromisoformat(raw["activatedAt"])
                if "activatedAt" in raw
                else None,
            }
        )

    async def require(self, peer_id: str) -> Peer:
        """The peer, or ``UnknownPeerError``."""
        peer = await self.get(peer_id)
        if peer is None:
            raise UnknownPeerError(f"no peer {peer_id!r} is registered here")
        return peer

    async def list(self) -> list[Peer]:
        """Every registered peer, by id."""
        ids = sorted(_text(i) for i in await self._redis.smembers(self._key("peers")))
        peers = [await self.get(i) for i in ids]
        return [p for p in peers if p is not None]

    async def set_state(self, peer_id: str, state: PeerState) -> PeerState:
        """Move the peer to ``state`` atomically; returns the state it left.

        ``UnknownPeerError`` if there is no such peer, ``PeerStateError`` if the move is
        not allowed from its current state (a revoked peer stays revoked).
        """
        allowed = [s.value for s in SOURCES[state]]
        status, previous = await self._set_state(
            keys=[self._key("peer", peer_id)],
            args=[json.dumps(allowed), state.value, utcnow().isoformat()],
        )
        if int(status) == -1:
            raise UnknownPeerError(f"no peer {peer_id!r} is registered here")
        if int(status) == 0:
            raise PeerStateError(f"peer {peer_id} is {_text(previous)}; cannot become {state}")
        return PeerState(_text(previous))

    async def require_state(self, peer_id: str, *states: PeerState) -> Peer:
        """The peer if it is in one of ``states``, else the error saying why not."""
        peer = await self.require(peer_id)
        if peer.state not in states:
            wanted = " or ".join(s.value for s in states)
            raise PeerStateError(f"peer {peer_id} is {peer.state.value}, not {wanted}")
        return peer
