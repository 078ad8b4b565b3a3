"""HTTP bodies of the hub's federation endpoints."""

from __future__ import annotations

from services.gateway.federation.peers import PeerId, PeerLimits, PeerUrl, PublicKey
from shared.federation.agents import RemoteAgent
from shared.federation.messages import KillOutcome
from shared.messages.agents import AgentRecord
from shared.messages.base import Message


class IdentityInfo(Message):
    """What to give a peer's admin so they can register this instance."""

    instance_id: str
    public_key: str
    url: str


class PeerRegistration(Message):
    """``POST /federation/peers``: a peer's id, gateway URL, public key and limits."""

    peer_id: PeerId
    url: PeerUrl
    public_key: PublicKey
    limits: PeerLimits | None = None
    """Default: ``FEDERATION_DEFAULT_MAX_AGENTS`` agents and no repository allowed."""


class RemoteSpawnAccepted(Message):
    """The agent a peer queued for us (``taskId`` as the peer stores it)."""

    peer_id: str
    agent_id: str
    task_id: str
    state: str
    task_state: str
    duplicate: bool = False


class RemoteStatus(Message):
    """A remote agent's record, as its instance reports it."""

    peer_id: str
    agent: AgentRecord


class RemoteKillResult(Message):
    """What a remote kill achieved by the time the peer answered."""

    peer_id: str
    agent_id: str
    state: str
    killed: bool


class RemoteAgentList(Message):
    """Agents this instance spawned on peers (each marked with its instance)."""

    instance: str
    agents: list[RemoteAgent]


class PeerKillAll(Message):
    """One peer's part of a federated kill-all."""

    peer_id: str
    ok: bool
    status: int
    agents: list[KillOutcome] = []
    error: str | None = None


class FederatedKillAll(Message):
    """A federated kill-all: this instance's agents and each active peer's."""

    instance: str
    local: list[KillOutcome]
    peers: list[PeerKillAll]
