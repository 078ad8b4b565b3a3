"""The spoke's endpoints: signed commands and handshake steps from peers.

These paths take no bearer token: the signature against the sender's pinned key is the
authentication. The order of checks is: parse, recipient, sender registered, signature,
timestamp window, peer state, message id (replay), then execution. Every verified
message gets a signed answer (refusals too), stored for repeats of the same message.

A request that fails before its signature and clock window are verified proves nothing
about who sent it: it is logged and counted (``mosaic_gateway_federation_unverified``),
never audited, and costs its source a token (``ratelimit``); an empty bucket is a 429.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from services.gateway.errors import ErrorResponse
from services.gateway.federation import trail
from services.gateway.federation.errors import FederationRoute
from services.gateway.federation.executor import execute, requester
from services.gateway.federation.peers import Peer, PeerState
from services.gateway.federation.ratelimit import RateLimitedError
from services.gateway.federation.replay import Claim
from services.gateway.federation.runtime import Fed, Federation
from shared.federation.envelope import (
    COMMAND_TYPES,
    HANDSHAKE_TYPES,
    Envelope,
    check_addressed,
    check_fresh,
    check_signature,
    parse,
    seal,
)
from shared.federation.errors import (
    FederationError,
    HandshakeError,
    InvalidEnvelopeError,
    UnknownPeerError,
)
from shared.federation.messages import Confirm, Hello, HelloAnswer, Outcome, OutcomeError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/federation", tags=["federation"], route_class=FederationRoute)

Step = Callable[[Federation, Peer, Envelope], Awaitable[Outcome]]
REPEAT_HEADER = "Mosaic-Federation-Repeat"

_ENVELOPE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": Envelope.model_json_schema()}},
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the signed answer (a `response` envelope)"},
    400: {"model": ErrorResponse, "description": "malformed envelope or wrong recipient"},
    401: {"model": ErrorResponse, "description": "bad signature or stale timestamp"},
    403: {"model": ErrorResponse, "description": "unknown peer, or peer not active"},
    409: {"model": ErrorResponse, "description": "message id reused, or still executing"},
}


@router.post("/commands", responses=_RESPONSES, openapi_extra=_ENVELOPE_BODY)
async def commands(request: Request, fed: Fed) -> Response:
    """A signed COMMAND from an active peer (authenticated by signature, not token)."""
    source = _source(request, fed)
    states = (PeerState.ACTIVE,)
    return await _receive(fed, source, await request.body(), COMMAND_TYPES, states, execute)


@router.post("/handshake", responses=_RESPONSES, openapi_extra=_ENVELOPE_BODY)
async def handshake(request: Request, fed: Fed) -> Response:
    """A signed handshake step from a registered (pending or active) peer."""
    source = _source(request, fed)
    states = (PeerState.PENDING, PeerState.ACTIVE)
    raw = await request.body()
    return await _receive(fed, source, raw, HANDSHAKE_TYPES, states, _handshake_step)


def _source(request: Request, fed: Federation) -> str:
    """The caller's address, refused (429) if it sent too many unverifiable requests."""
    source = request.client.host if request.client else "unknown"
    try:
        fed.runtime.unverified.check(source)
    except RateLimitedError:
        fed.deps.metrics.federation_unverified.labels(RateLimitedError.code).inc()
        raise
    return source


async def _receive(
    fed: Federation,
    source: str,
    raw: bytes,
    types: tuple[str, ...],
    states: tuple[PeerState, ...],
    step: Step,
) -> Response:
    claimed_sender = "unknown"
    try:
        envelope = parse(raw)
        claimed_sender = envelope.sender
        check_addressed(envelope, fed.me)
        if envelope.type not in types:
            raise InvalidEnvelopeError(f"type: {envelope.type} is not accepted on this path")
        peer = await fed.peers.get(envelope.sender)
        if peer is None:
            raise UnknownPeerError(f"sender {envelope.sender} is not a registered peer")
        check_signature(envelope, peer.public_key)
        check_fresh(envelope, fed.runtime.settings.federation_window_s)
    except FederationError as exc:
        fed.runtime.unverified.spend(source)
        fed.deps.metrics.federation_unverified.labels(exc.code).inc()
        log.warning(
            "refused an unverifiable federation request from %s (claims %s): %s",
            source,
            claimed_sender[:80],
            exc.message,
        )
        raise
    try:
        await fed.peers.require_state(peer.peer_id, *states)
        claim = await fed.guard.claim(envelope)
    except FederationError as exc:  # a verified peer, refused: that is worth keeping
        log.warning("refused a federation message from %s: %s", peer.peer_id, exc.message)
        await trail.record(
            fed.deps,
            trail.ACT_COMMAND,
            requester(peer.peer_id),
            exc.message,
            refused=True,
            code=exc.code,
            verified=True,
        )
        raise
    if claim is Claim.REPEAT:
        stored = await fed.guard.answer_of(envelope)
        return Response(stored, media_type="application/json", headers={REPEAT_HEADER: "1"})
    try:
        outcome = await step(fed, peer, envelope)
    except FederationError as exc:
        if exc.retryable:
            await fed.guard.release(envelope)
            raise
        outcome = Outcome(
            ok=False, status=exc.status, error=OutcomeError(code=exc.code, message=exc.message)
        )
    except BaseException:
        await fed.guard.release(envelope)  # nothing was done; a retry may run it
        raise
    answer = seal(
        fed.runtime.identity,
        "response",
        outcome.model_dump(mode="json"),
        envelope.sender,
        in_reply_to=envelope.message_id,
    )
    body = answer.model_dump_json().encode()
    await fed.guard.remember(envelope, body)
    agent_id = None
    if isinstance(outcome.result, dict):
        agent_id = outcome.result.get("agentId")
    await trail.record(
        fed.deps,
        trail.ACT_COMMAND,
        requester(peer.peer_id),
        outcome.error.message if outcome.error else envelope.type,
        agent_id=agent_id if isinstance(agent_id, str) else None,
        type=envelope.type,
        messageId=envelope.message_id,
        status=outcome.status,
        refused=not outcome.ok,
        code=outcome.error.code if outcome.error else None,
        verified=True,
    )
    return Response(body, media_type="application/json")


async def _handshake_step(fed: Federation, peer: Peer, envelope: Envelope) -> Outcome:
    """Answer a hello with our proof and a challenge; activate on a correct confirm."""
    key = fed.deps.store.key("federation", "challenge", peer.peer_id)
    redis = fed.deps.store.redis
    window = int(fed.runtime.settings.federation_window_s)
    try:
        hello = (
            Hello.model_validate(envelope.payload) if envelope.type == "handshake.hello" else None
        )
        confirm = Confirm.model_validate(envelope.payload) if hello is None else None
    except ValidationError as exc:
        raise HandshakeError(f"payload: {exc.errors()[0].get('msg')}") from exc
    if hello is not None:
        mine = secrets.token_urlsafe(32)
        await redis.set(key, mine, ex=max(window, 10))
        result = HelloAnswer(answer=hello.challenge, challenge=mine)
        return Outcome(ok=True, status=200, result=result.model_dump(mode="json"))
    assert confirm is not None
    expected = await redis.getdel(key)
    expected_text = expected.decode() if isinstance(expected, bytes) else expected
    if expected_text is None or not hmac.compare_digest(expected_text, confirm.answer):
        raise HandshakeError("the answer does not match this instance's challenge")
    previous = await fed.peers.set_state(peer.peer_id, PeerState.ACTIVE)
    await trail.record(
        fed.deps,
        trail.ACT_PEER,
        requester(peer.peer_id),
        "handshake completed (responder)",
        peerId=peer.peer_id,
        change="activated",
        previous=previous.value,
    )
    return Outcome(ok=True, status=200, result={"state": "active", "instance": fed.me})
