"""Sending a signed envelope to a peer's gateway and checking its signed answer.

Every try sends the *same* signed message (same id, same timestamp): the spoke executes a
message id once and answers repeats from its store, so retrying is safe for every
command. Each try is bounded by ``FEDERATION_TIMEOUT_S``; there are at most
``FEDERATION_ATTEMPTS`` tries, and nothing is recorded on the hub until a verified answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from pydantic import ValidationError

from services.gateway.federation.peers import Peer
from services.gateway.federation.runtime import Federation
from shared.backoff import backoff_delay
from shared.federation.envelope import (
    Envelope,
    EnvelopeType,
    check_addressed,
    check_signature,
    parse,
    seal,
)
from shared.federation.errors import (
    FederationError,
    PeerRefusedError,
    PeerTimeoutError,
    PeerUnreachableError,
)
from shared.federation.messages import Outcome

log = logging.getLogger(__name__)

COMMANDS_PATH = "/federation/commands"
HANDSHAKE_PATH = "/federation/handshake"


async def exchange(
    fed: Federation,
    peer: Peer,
    type_: EnvelopeType,
    payload: dict[str, Any],
    path: str = COMMANDS_PATH,
) -> Outcome:
    """Send one command to ``peer`` and return its verified ``Outcome``.

    ``PeerTimeoutError`` (504) when the peer does not answer in time,
    ``PeerUnreachableError`` (502) when it cannot be reached or its answer does not
    verify, ``PeerRefusedError`` (502) when it refuses the envelope itself.
    """
    runtime = fed.runtime
    envelope = seal(runtime.identity, type_, payload, peer.peer_id)
    body = envelope.model_dump_json().encode()
    attempts = runtime.settings.federation_attempts
    last: PeerUnreachableError = PeerUnreachableError(peer.peer_id, "no attempt made")
    for attempt in range(1, attempts + 1):
        try:
            response = await runtime.http.post(
                peer.url + path,
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=runtime.settings.federation_timeout_s,
            )
        except httpx.TimeoutException:
            last = PeerTimeoutError(
                peer.peer_id,
                f"no answer from {peer.url} within {runtime.settings.federation_timeout_s:g}s",
            )
        except httpx.TransportError as exc:
            last = PeerUnreachableError(
                peer.peer_id, f"unreachable at {peer.url} ({type(exc).__name__})"
            )
        else:
            if response.status_code == 200:
                return _verified(fed, peer, envelope, response.content)
            code, message = _error_of(response)
            if response.status_code not in (409, 502, 503, 504) or (
                response.status_code == 409 and code != "in_progress"
            ):
                raise PeerRefusedError(
                    peer.peer_id,
                    f"refused the message ({response.status_code} {code}: {message})",
                )
            last = PeerUnreachableError(
                peer.peer_id, f"answered {response.status_code} {code}: {message}"
            )
        log.warning("%s to peer %s, try %d/%d: %s", type_, peer.peer_id, attempt, attempts, last)
        if attempt < attempts:
            await asyncio.sleep(backoff_delay(attempt, base=0.25, cap=2.0))
    raise last


def _verified(fed: Federation, peer: Peer, sent: Envelope, raw: bytes) -> Outcome:
    """The answer's outcome, if it is the peer's signed answer to ``sent``."""
    try:
        answer = parse(raw)
        check_addressed(answer, fed.me)
        if answer.sender != peer.peer_id or answer.type != "response":
            raise PeerUnreachableError(peer.peer_id, "answer is not a response from this peer")
        check_signature(answer, peer.public_key)
        if answer.in_reply_to != sent.message_id:
            raise PeerUnreachableError(peer.peer_id, "answer is for another message")
        return Outcome.model_validate(answer.payload)
    except PeerUnreachableError:
        raise
    except (FederationError, ValidationError) as exc:
        raise PeerUnreachableError(
            peer.peer_id, f"answer refused: {exc}", code="bad_peer_answer"
        ) from exc


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "error")), str(error.get("message", ""))[:300]
    except (ValueError, AttributeError):
        return "error", response.text[:200]
