"""The federation's errors: one base, each with the HTTP status an edge answers with."""

from __future__ import annotations

from shared.errors import MosaicError


class FederationError(MosaicError):
    """Base of every federation error; ``status`` is the HTTP answer at the edge."""

    code = "federation_error"
    status = 400


class InvalidEnvelopeError(FederationError):
    """An envelope that does not parse or names the wrong recipient."""

    code = "invalid_envelope"
    status = 400


class SignatureError(FederationError):
    """The signature does not verify against the sender's pinned key."""

    code = "bad_signature"
    status = 401


class StaleMessageError(FederationError):
    """The timestamp is outside the accepted window."""

    code = "stale_message"
    status = 401


class ReplayError(FederationError):
    """A message id already seen, with different content."""

    code = "replayed_message"
    status = 409


class InProgressError(FederationError):
    """The same message is still being executed; retry shortly."""

    code = "in_progress"
    status = 409
    retryable = True


class UnknownPeerError(FederationError):
    """The sender (or the named peer) is not registered here."""

    code = "unknown_peer"
    status = 403


class PeerStateError(FederationError):
    """The peer is not in a state that allows this (not active, revoked …)."""

    code = "peer_not_active"
    status = 403


class HandshakeError(FederationError):
    """A handshake step failed (wrong answer to a challenge, expired challenge)."""

    code = "handshake_failed"
    status = 403


class CommandRefusedError(FederationError):
    """A verified command the spoke refuses (not the peer's agent, over its limit …)."""

    code = "command_refused"
    status = 403


class PeerUnreachableError(FederationError):
    """The peer's gateway could not be reached, or answered with something unusable."""

    code = "peer_unreachable"
    status = 502
    retryable = True

    def __init__(self, peer_id: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"peer {peer_id}: {message}", code=code)
        self.peer_id = peer_id


class PeerTimeoutError(PeerUnreachableError):
    """The peer did not answer within the bounded timeout."""

    code = "peer_timeout"
    status = 504


class PeerRefusedError(PeerUnreachableError):
    """The peer answered, refusing the command (its error is passed on)."""

    code = "peer_refused"
    status = 502
    retryable = False
