"""The spoke's side of a verified command: the normal paths, with the peer as requester.

Spawn goes through ``submit`` (the task queue); kill through the core NATS kill
subjects. A peer sees and kills only agents it spawned here, within its own limits
(count, repositories) and the deployment's caps for every peer (``check_caps``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import ValidationError

from services.gateway.errors import InvalidInputError
from services.gateway.federation.peers import Peer
from services.gateway.federation.runtime import Federation
from services.gateway.kills import kill_and_wait, live_agents
from services.gateway.submit import BudgetHoldError, submit
from shared.federation.envelope import Envelope
from shared.federation.errors import CommandRefusedError, InProgressError
from shared.federation.messages import AgentRef, KillAllOrder, KillOutcome, Outcome
from shared.federation.settings import FederationSettings
from shared.messages.agents import AgentRecord, AgentState
from shared.messages.kill import KillOrdered
from shared.messages.tasks import SpawnAgentRequest
from shared.spawners import NoSpawnerReadyError

log = logging.getLogger(__name__)

M = TypeVar("M", SpawnAgentRequest, AgentRef, KillAllOrder)


def requester(peer_id: str) -> str:
    """How a peer is named as the requester in events and the audit trail."""
    return f"peer:{peer_id}"


class NotYoursError(CommandRefusedError):
    """The agent does not exist here or was not spawned by this peer (same answer)."""

    code = "not_found"
    status = 404


class OverLimitError(CommandRefusedError):
    """The peer already runs as many agents here as it may."""

    code = "over_limit"
    status = 429


class RepositoryRefusedError(CommandRefusedError):
    """The repository is not in the peer's allowed list."""

    code = "repository_not_allowed"
    status = 403


class CapExceededError(CommandRefusedError):
    """The spawn asks for more than this deployment lets any peer have."""

    code = "over_peer_cap"
    status = 403


GATE_STRENGTH = {"minimal": 0, "standard": 1, "strict": 2}
"""Gate profiles by strength: a peer may ask for the local default or stronger."""


class BudgetSpentError(CommandRefusedError):
    """The peer's daily budget here, or the deployment's, is spent: nothing is stored
    until the next UTC day (or, for the deployment's, an admin's resume)."""

    code = "budget_exhausted"
    status = 429


class NotReadyError(CommandRefusedError):
    """No spawner here can run an agent (no sandbox, no model); nothing was stored."""

    code = "no_spawner_ready"
    status = 503
    retryable = True


class InvalidCommandError(CommandRefusedError):
    """The payload does not validate."""

    code = "invalid_request"
    status = 422


async def execute(fed: Federation, peer: Peer, envelope: Envelope) -> Outcome:
    """Run one verified command from an active peer; refusals raise ``CommandRefusedError``."""
    if envelope.type == "agent.spawn":
        return await _spawn(fed, peer, envelope)
    if envelope.type == "agent.status":
        ref = _parse(AgentRef, envelope.payload)
        record = await _owned(fed, peer, ref.agent_id)
        return Outcome(ok=True, status=200, result=record.model_dump(mode="json"))
    if envelope.type == "agent.kill":
        return await _kill(fed, peer, envelope)
    if envelope.type == "agent.kill_all":
        return await _kill_all(fed, peer, envelope)
    raise InvalidCommandError(f"type: {envelope.type} is not a command")


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise InvalidCommandError(f"payload.{field}: {first.get('msg')}") from exc


async def _owned(fed: Federation, peer: Peer, agent_id: str) -> AgentRecord:
    owner = await fed.ownership.owner_of(agent_id)
    record = await fed.deps.store.get_agent(agent_id) if owner == peer.peer_id else None
    if record is None:
        raise NotYoursError(f"no agent {agent_id} spawned by {peer.peer_id} here")
    return record


def check_caps(request: SpawnAgentRequest, settings: FederationSettings, default: str) -> None:
    """Refuse a peer's spawn that asks for more than the deployment's caps: a priority
    above the floor, a longer timeout, network access, or gates weaker than ``default``."""
    floor = settings.federation_priority_floor
    if request.priority < floor:
        raise CapExceededError(
            f"payload.priority: {request.priority} is above what peers may ask for here "
            f"(at most priority {floor}; 1 is the highest)"
        )
    longest = settings.federation_max_timeout_s
    timeout = request.options.timeout
    if timeout is not None and timeout > longest:
        raise CapExceededError(
            f"payload.options.timeout: {timeout}s is over the peers' limit of {longest}s"
        )
    if request.options.network and not settings.federation_allow_network:
        raise CapExceededError("payload.options.network: peers' agents get no network here")
    asked = request.gate_profile or default
    if GATE_STRENGTH[asked] < GATE_STRENGTH.get(default, GATE_STRENGTH["strict"]):
        raise CapExceededError(
            f"payload.gateProfile: {asked} is weaker than this instance's default ({default})"
        )


async def _spawn(fed: Federation, peer: Peer, envelope: Envelope) -> Outcome:
    request = _parse(SpawnAgentRequest, envelope.payload)
    check_caps(request, fed.runtime.settings, fed.deps.quality.default_gate_profile)
    if not peer.limits.allows_repository(request.context.repository):
        raise RepositoryRefusedError(
            f"peer {peer.peer_id} may not use repository {request.context.repository}"
        )
    task_id = f"{peer.peer_id}.{request.task_id}"  # a peer never meets our task ids
    if len(task_id) > 128:
        raise InvalidCommandError("payload.taskId: too long once prefixed with the peer id")
    local = request.model_copy(update={"task_id": task_id})
    deps = fed.deps
    async with _peer_lock(fed, peer.peer_id):
        existing = await deps.store.agent_for_task(task_id)
        if existing is None:
            live = await live_agents(deps, await fed.ownership.agents_of(peer.peer_id))
            if len(live) >= peer.limits.max_agents:
                raise OverLimitError(
                    f"peer {peer.peer_id} already runs {len(live)} agents here "
                    f"(limit {peer.limits.max_agents})"
                )
            await _within_daily_budget(fed, peer)
        elif await fed.ownership.owner_of(existing) != peer.peer_id:
            raise NotYoursError(f"task {task_id} belongs to someone else")
        try:
            record, created = await submit(local, deps)
        except InvalidInputError as exc:
            raise InvalidCommandError(f"payload.{exc.message}") from exc
        except NoSpawnerReadyError as exc:
            raise NotReadyError(exc.message) from exc
        except BudgetHoldError as exc:
            raise BudgetSpentError(exc.message) from exc
        if created:
            await fed.ownership.record(peer.peer_id, record.agent_id)
    if created:
        await deps.tracker.record(
            record.agent_id,
            record.task_id,
            "progress",
            {
                "step": "federated",
                "requestedBy": requester(peer.peer_id),
                "messageId": envelope.message_id,
            },
        )
    result = {
        "agentId": record.agent_id,
        "taskId": record.task_id,
        "state": record.state.value,
        "taskState": record.task_state.value,
        "duplicate": not created,
        "instance": fed.me,
    }
    return Outcome(ok=True, status=202 if created else 200, result=result)


async def _within_daily_budget(fed: Federation, peer: Peer) -> None:
    """Refuse a new agent once the peer's agents spent its ``maxUsdPerDay`` here today."""
    limit = peer.limits.max_usd_per_day
    if limit is None:
        return
    spent = await fed.deps.store.peer_spend_today(peer.peer_id)
    if spent >= limit:
        raise BudgetSpentError(
            f"peer {peer.peer_id} spent its daily budget here: ${spent:.4f} of "
            f"${limit:.2f} (maxUsdPerDay) this UTC day"
        )


async def _kill(fed: Federation, peer: Peer, envelope: Envelope) -> Outcome:
    ref = _parse(AgentRef, envelope.payload)
    record = await _owned(fed, peer, ref.agent_id)
    order = KillOrdered(
        reason=ref.reason or f"killed by federated peer {peer.peer_id}",
        requested_by=requester(peer.peer_id),
    )
    final = await kill_and_wait(fed.deps, [record.agent_id], order)
    state = final.get(record.agent_id, record.state)
    outcome = KillOutcome(
        agent_id=record.agent_id, state=state.value, killed=state == AgentState.KILLED
    )
    return Outcome(ok=True, status=200, result=outcome.model_dump(mode="json"))


async def _kill_all(fed: Federation, peer: Peer, envelope: Envelope) -> Outcome:
    order_in = _parse(KillAllOrder, envelope.payload)
    live = await live_agents(fed.deps, await fed.ownership.agents_of(peer.peer_id))
    order = KillOrdered(
        reason=order_in.reason or f"federated kill-all from {peer.peer_id}",
        requested_by=requester(peer.peer_id),
    )
    final = await kill_and_wait(fed.deps, live, order) if live else {}
    outcomes = [
        KillOutcome(agent_id=i, state=final[i].value, killed=final[i] == AgentState.KILLED)
        for i in live
        if i in final
    ]
    return Outcome(
        ok=True,
        status=200,
        result={"instance": fed.me, "agents": [o.model_dump(mode="json") for o in outcomes]},
    )


@asynccontextmanager
async def _peer_lock(fed: Federation, peer_id: str) -> AsyncIterator[None]:
    """One spawn per peer at a time (so its limit holds), across gateway processes."""
    redis = fed.deps.store.redis
    key = fed.deps.store.key("federation", "lock", peer_id)
    token = secrets.token_hex(8)
    for _ in range(100):
        if await redis.set(key, token, nx=True, px=10_000):
            break
        await asyncio.sleep(0.05)
    else:
        raise InProgressError(f"another spawn for peer {peer_id} is still in progress")
    try:
        yield
    finally:
        current = await redis.get(key)
        if (
            current is not None
            and (current.decode() if isinstance(current, bytes) else current) == token
        ):
            await redis.delete(key)
