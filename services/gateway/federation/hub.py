"""The hub's endpoints: manage peers (admins), spawn, watch and kill agents on them
(operators), and the federated kill-all (admins)."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.gateway.auth import RequireAdmin, RequireOperator
from services.gateway.errors import ErrorResponse, error_response
from services.gateway.federation import trail
from services.gateway.federation.errors import FederationRoute, RemoteRefusedError
from services.gateway.federation.peers import Peer, PeerLimits, PeerState
from services.gateway.federation.runtime import Fed, Federation
from services.gateway.federation.schemas import (
    FederatedKillAll,
    IdentityInfo,
    PeerKillAll,
    PeerRegistration,
    RemoteAgentList,
    RemoteKillResult,
    RemoteSpawnAccepted,
    RemoteStatus,
)
from services.gateway.federation.transport import HANDSHAKE_PATH, exchange
from services.gateway.kills import kill_and_wait
from shared.federation.agents import RemoteAgent
from shared.federation.errors import FederationError, HandshakeError, InvalidEnvelopeError
from shared.federation.messages import (
    AgentRef,
    Confirm,
    Hello,
    HelloAnswer,
    KillAllOrder,
    KillOutcome,
    Outcome,
)
from shared.ids import AGENT_ID_PATTERN
from shared.messages.agents import AgentRecord, AgentState
from shared.messages.base import utcnow
from shared.messages.kill import KillOrdered
from shared.messages.tasks import SpawnAgentRequest

router = APIRouter(prefix="/federation", tags=["federation"], route_class=FederationRoute)

PeerIdPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$", description="peer id")]
AgentIdPath = Annotated[str, Path(pattern=AGENT_ID_PATTERN, description="agent id")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or invalid token"},
    403: {"model": ErrorResponse, "description": "role too low, or peer not active"},
    404: {"model": ErrorResponse, "description": "no such peer (or agent, on the peer)"},
    422: {"model": ErrorResponse, "description": "invalid input; names the field"},
    502: {"model": ErrorResponse, "description": "the peer is unreachable or refused"},
    504: {"model": ErrorResponse, "description": "the peer did not answer in time"},
}


def _admin_actor(fed: Federation) -> str:
    return f"http:admin@{fed.me}"


@router.get("/identity", response_model=IdentityInfo, responses=_ERRORS)
async def identity(fed: Fed, _: RequireOperator) -> IdentityInfo:
    """This instance's id, public key and URL, to give to a peer's admin."""
    runtime = fed.runtime
    return IdentityInfo(
        instance_id=runtime.identity.instance_id,
        public_key=runtime.identity.public_key,
        url=runtime.public_url,
    )


@router.get("/peers", response_model=list[Peer], responses=_ERRORS)
async def list_peers(fed: Fed, _: RequireOperator) -> list[Peer]:
    """Registered peers with their state and limits."""
    return await fed.peers.list()


@router.post("/peers", status_code=201, response_model=Peer, responses=_ERRORS)
async def register_peer(body: PeerRegistration, fed: Fed, _: RequireAdmin) -> Peer:
    """Register (or re-register) a peer as ``pending``; a handshake activates it."""
    if body.peer_id == fed.me:
        raise InvalidEnvelopeError("peerId: that is this instance's own id")
    limits = body.limits or PeerLimits(
        max_agents=fed.runtime.settings.federation_default_max_agents
    )
    peer, previous = await fed.peers.register(
        Peer(peer_id=body.peer_id, url=body.url, public_key=body.public_key, limits=limits)
    )
    await trail.record(
        fed.deps,
        trail.ACT_PEER,
        _admin_actor(fed),
        "peer registered",
        peerId=peer.peer_id,
        change="registered",
        previous=previous.value if previous else None,
        url=peer.url,
        publicKey=peer.public_key,
        limits=peer.limits.model_dump(mode="json"),
    )
    return peer


@router.api_route(
    "/peers",
    methods=["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
    include_in_schema=False,
)
async def peers_other_methods() -> Response:
    """Two routes share this path: name both in ``Allow`` (Starlette names the first)."""
    return error_response(
        405, "method_not_allowed", "method not allowed on this path", headers={"Allow": "GET, POST"}
    )


@router.post("/peers/{peer_id}/handshake", response_model=Peer, responses=_ERRORS)
async def handshake(peer_id: PeerIdPath, fed: Fed, _: RequireAdmin) -> Peer:
    """Prove keys both ways with the peer; both sides mark the connection ``active``."""
    peer = await fed.peers.require_state(peer_id, PeerState.PENDING, PeerState.ACTIVE)
    mine = secrets.token_urlsafe(32)
    hello = Hello(challenge=mine).model_dump(mode="json")
    answer = _result(peer, await exchange(fed, peer, "handshake.hello", hello, HANDSHAKE_PATH))
    try:
        theirs = HelloAnswer.model_validate(answer)
    except ValidationError as exc:
        raise HandshakeError(f"peer {peer_id} answered the hello with no challenge") from exc
    if not hmac.compare_digest(theirs.answer, mine):
        raise HandshakeError(f"peer {peer_id} signed an answer to another challenge")
    confirm = Confirm(answer=theirs.challenge).model_dump(mode="json")
    _result(peer, await exchange(fed, peer, "handshake.confirm", confirm, HANDSHAKE_PATH))
    previous = await fed.peers.set_state(peer_id, PeerState.ACTIVE)
    await trail.record(
        fed.deps,
        trail.ACT_PEER,
        _admin_actor(fed),
        "handshake completed (initiator)",
        peerId=peer_id,
        change="activated",
        previous=previous.value,
    )
    return await fed.peers.require(peer_id)


async def _change(fed: Federation, peer_id: str, state: PeerState, why: str) -> Peer:
    previous = await fed.peers.set_state(peer_id, state)
    await trail.record(
        fed.deps,
        trail.ACT_PEER,
        _admin_actor(fed),
        why,
        peerId=peer_id,
        change=state.value,
        previous=previous.value,
    )
    return await fed.peers.require(peer_id)


@router.post("/peers/{peer_id}/suspend", response_model=Peer, responses=_ERRORS)
async def suspend(peer_id: PeerIdPath, fed: Fed, _: RequireAdmin) -> Peer:
    """Stop accepting the peer's commands and sending ours (re-register and handshake to resume)."""
    return await _change(fed, peer_id, PeerState.SUSPENDED, "peer suspended")


@router.post("/peers/{peer_id}/revoke", response_model=Peer, responses=_ERRORS)
async def revoke(peer_id: PeerIdPath, fed: Fed, _: RequireAdmin) -> Peer:
    """End the connection for good (re-registering starts over as ``pending``)."""
    return await _change(fed, peer_id, PeerState.REVOKED, "peer revoked")


def _result(peer: Peer, outcome: Outcome) -> Any:
    if not outcome.ok:
        error = outcome.error
        code = error.code if error else "error"
        message = error.message if error else "no reason given"
        raise RemoteRefusedError(peer.peer_id, outcome.status, code, message)
    return outcome.result


async def _active(fed: Federation, peer_id: str) -> Peer:
    return await fed.peers.require_state(peer_id, PeerState.ACTIVE)


@router.post(
    "/peers/{peer_id}/agents/spawn",
    status_code=202,
    response_model=RemoteSpawnAccepted,
    responses=_ERRORS,
)
async def spawn(
    peer_id: PeerIdPath, body: Annotated[SpawnAgentRequest, Body()], fed: Fed, _: RequireOperator
) -> Response:
    """Queue a task on the peer (202), or 200 with its agent if the peer knows the task."""
    peer = await _active(fed, peer_id)
    payload = body.model_dump(mode="json")
    result = _result(peer, await exchange(fed, peer, "agent.spawn", payload))
    try:
        accepted = RemoteSpawnAccepted(
            peer_id=peer_id,
            agent_id=result["agentId"],
            task_id=result["taskId"],
            state=result["state"],
            task_state=result["taskState"],
            duplicate=bool(result.get("duplicate")),
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise FederationError(f"peer {peer_id} answered the spawn without an agent") from exc
    await fed.remote.put(
        RemoteAgent(
            peer_id=peer_id,
            agent_id=accepted.agent_id,
            task_id=accepted.task_id,
            repository=body.context.repository,
            state=accepted.state,
        )
    )
    await trail.record(
        fed.deps,
        trail.ACT_SENT,
        f"http:operator@{fed.me}",
        "agent.spawn",
        agent_id=accepted.agent_id,
        task_id=body.task_id,
        peerId=peer_id,
    )
    status = 200 if accepted.duplicate else 202
    return JSONResponse(accepted.model_dump(mode="json"), status_code=status)


@router.get(
    "/peers/{peer_id}/agents/{agent_id}/status", response_model=RemoteStatus, responses=_ERRORS
)
async def status(
    peer_id: PeerIdPath, agent_id: AgentIdPath, fed: Fed, _: RequireOperator
) -> RemoteStatus:
    """The remote agent's record, fresh from the peer."""
    peer = await _active(fed, peer_id)
    ref = AgentRef(agent_id=agent_id).model_dump(mode="json")
    record = AgentRecord.model_validate(
        _result(peer, await exchange(fed, peer, "agent.status", ref))
    )
    await _remember(fed, peer_id, record)
    return RemoteStatus(peer_id=peer_id, agent=record)


async def _remember(fed: Federation, peer_id: str, record: AgentRecord) -> None:
    known = await fed.remote.get(peer_id, record.agent_id)
    if known is not None:
        await fed.remote.put(
            known.model_copy(
                update={
                    "state": record.state.value,
                    "updated_at": utcnow(),
                    "error": record.error,
                    "pushed_branch": record.pushed_branch,
                }
            )
        )


@router.post(
    "/peers/{peer_id}/agents/{agent_id}/kill", response_model=RemoteKillResult, responses=_ERRORS
)
async def kill(
    peer_id: PeerIdPath, agent_id: AgentIdPath, fed: Fed, role: RequireOperator
) -> RemoteKillResult:
    """Kill an agent this instance spawned on the peer."""
    peer = await _active(fed, peer_id)
    ref = AgentRef(agent_id=agent_id, reason=f"killed from {fed.me} by {role.label}")
    outcome = KillOutcome.model_validate(
        _result(peer, await exchange(fed, peer, "agent.kill", ref.model_dump(mode="json")))
    )
    known = await fed.remote.get(peer_id, agent_id)
    if known is not None:
        await fed.remote.put(
            known.model_copy(update={"state": outcome.state, "updated_at": utcnow()})
        )
    return RemoteKillResult(
        peer_id=peer_id, agent_id=agent_id, state=outcome.state, killed=outcome.killed
    )


@router.get("/agents", response_model=RemoteAgentList, responses=_ERRORS)
async def remote_agents(
    fed: Fed,
    _: RequireOperator,
    peer_id: Annotated[str | None, Query(alias="peerId", max_length=63)] = None,
) -> RemoteAgentList:
    """Agents this instance spawned on peers, newest first, each with its instance
    (``peerId``) and last known state (refreshed by status, kill and kill-all)."""
    return RemoteAgentList(instance=fed.me, agents=await fed.remote.list(peer_id))


@router.post("/kill-all", response_model=FederatedKillAll, responses=_ERRORS)
async def kill_all(fed: Fed, _: RequireAdmin) -> FederatedKillAll:
    """Kill every agent here (as ``/agents/kill-all`` does, holding the queue) and, on
    every active peer, every agent this instance spawned there; reports each peer."""
    deps = fed.deps
    reason = f"federated kill-all from {fed.me}"
    order = KillOrdered(reason=reason, requested_by=f"federation:{fed.me}")
    peers = [p for p in await fed.peers.list() if p.state == PeerState.ACTIVE]
    local_final, *remote = await asyncio.gather(
        kill_and_wait(deps, None, order),
        *(_kill_all_on(fed, peer, reason) for peer in peers),
    )
    assert isinstance(local_final, dict)
    local = [
        KillOutcome(agent_id=i, state=s.value, killed=s == AgentState.KILLED)
        for i, s in local_final.items()
    ]
    reports = [r for r in remote if isinstance(r, PeerKillAll)]
    result = FederatedKillAll(instance=fed.me, local=local, peers=reports)
    await trail.record(
        deps,
        trail.ACT_KILL_ALL,
        _admin_actor(fed),
        reason,
        instance=fed.me,
        local=[o.agent_id for o in local],
        peers=[r.model_dump(mode="json") for r in reports],
    )
    return result


async def _kill_all_on(fed: Federation, peer: Peer, reason: str) -> PeerKillAll:
    payload = KillAllOrder(reason=reason).model_dump(mode="json")
    try:
        outcome = await exchange(fed, peer, "agent.kill_all", payload)
    except FederationError as exc:
        return PeerKillAll(peer_id=peer.peer_id, ok=False, status=exc.status, error=exc.message)
    if not outcome.ok:
        message = outcome.error.message if outcome.error else "refused"
        return PeerKillAll(peer_id=peer.peer_id, ok=False, status=outcome.status, error=message)
    agents = [KillOutcome.model_validate(a) for a in (outcome.result or {}).get("agents", [])]
    for agent in agents:
        known = await fed.remote.get(peer.peer_id, agent.agent_id)
        if known is not None:
            await fed.remote.put(known.model_copy(update={"state": agent.state}))
    return PeerKillAll(peer_id=peer.peer_id, ok=True, status=outcome.status, agents=agents)
