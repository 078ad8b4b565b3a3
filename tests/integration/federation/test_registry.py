"""The peer registry and the replay guard against a real valkey-server."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.gateway.federation.peers import Peer, PeerLimits, PeerRegistry, PeerState
from services.gateway.federation.replay import Claim, ReplayGuard
from shared.federation.envelope import seal
from shared.federation.errors import (
    InProgressError,
    PeerStateError,
    ReplayError,
    UnknownPeerError,
)
from shared.federation.identity import Identity

pytestmark = pytest.mark.integration


async def test_peer_states_move_only_along_the_lifecycle(redis: Redis, unique: str) -> None:
    registry = PeerRegistry(redis, f"t{unique}")
    key = Identity.generate("peer-a").public_key
    peer, previous = await registry.register(
        Peer(peer_id="peer-a", url="http://127.0.0.1:1/", public_key=key, limits=PeerLimits())
    )
    assert previous is None
    assert peer.state == PeerState.PENDING
    assert peer.url == "http://127.0.0.1:1"
    assert await registry.set_state("peer-a", PeerState.ACTIVE) == PeerState.PENDING
    stored = await registry.require("peer-a")
    assert stored.state == PeerState.ACTIVE
    assert stored.activated_at is not None
    assert stored.limits.allowed_repositories == []
    await registry.set_state("peer-a", PeerState.REVOKED)
    with pytest.raises(PeerStateError, match="revoked"):
        await registry.set_state("peer-a", PeerState.ACTIVE)
    with pytest.raises(UnknownPeerError):
        await registry.set_state("peer-b", PeerState.ACTIVE)
    # re-registering starts over as pending, never active
    again, previous = await registry.register(stored)
    assert previous == PeerState.REVOKED
    assert again.state == PeerState.PENDING
    assert (await registry.require("peer-a")).activated_at is None
    assert [p.peer_id for p in await registry.list()] == ["peer-a"]


async def test_replay_guard_runs_a_message_once_and_answers_repeats(
    redis: Redis, unique: str
) -> None:
    guard = ReplayGuard(redis, f"t{unique}", ttl_seconds=120)
    alice = Identity.generate("alice-1")
    envelope = seal(alice, "agent.status", {"agentId": "a"}, "bob-1")
    assert await guard.claim(envelope) is Claim.NEW
    assert await guard.claim(envelope) is Claim.REPEAT
    with pytest.raises(InProgressError):
        await guard.answer_of(envelope)
    await guard.remember(envelope, b"answer")
    assert await guard.answer_of(envelope) == b"answer"
    altered = seal(alice, "agent.status", {"agentId": "b"}, "bob-1", message_id=envelope.message_id)
    with pytest.raises(ReplayError):
        await guard.claim(altered)
    ttl = await redis.ttl(f"t{unique}:federation:seen:alice-1:{envelope.message_id}")
    assert 100 < ttl <= 120
    # the same id from another sender is another message
    other = seal(
        Identity.generate("carol-1"), "agent.status", {}, "bob-1", message_id=envelope.message_id
    )
    assert await guard.claim(other) is Claim.NEW
    # a released claim (retryable failure, nothing done) may run again
    await guard.release(other)
    assert await guard.claim(other) is Claim.NEW
