"""The signed envelope every federation message travels in, and its canonical form.

Canonical form (what is signed): the envelope's wire fields (camelCase) except
``signature``, serialised as JSON with keys sorted at every level, no whitespace
(``","`` and ``":"`` separators), non-ASCII characters written as themselves, encoded
as UTF-8; NaN and infinities are refused. The signed bytes are ``SIGNING_CONTEXT``
followed by that JSON, so a signature can never be mistaken for one made for
another protocol. The signature is Ed25519, carried as standard base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError

from shared.federation.errors import (
    InvalidEnvelopeError,
    SignatureError,
    StaleMessageError,
)
from shared.federation.identity import Identity, verify
from shared.messages.base import Message

SIGNING_CONTEXT = b"mosaic-federation-v1\n"
"""Prefix of every signed byte string (domain separation)."""

COMMAND_TYPES = ("agent.spawn", "agent.status", "agent.kill", "agent.kill_all")
HANDSHAKE_TYPES = ("handshake.hello", "handshake.confirm")
EnvelopeType = Literal[
    "agent.spawn",
    "agent.status",
    "agent.kill",
    "agent.kill_all",
    "handshake.hello",
    "handshake.confirm",
    "response",
]
InstanceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")]
MessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


def now_ms() -> int:
    """Unix time in milliseconds, the envelope's clock."""
    return time.time_ns() // 1_000_000


class Envelope(Message):
    """A COMMAND, handshake step or response between two instances.

    ``payload`` is the command's body; ``inReplyTo`` (responses only) is the id of the
    message answered; ``timestamp`` is Unix milliseconds at the sender.
    """

    version: Literal[1] = 1
    type: EnvelopeType
    payload: dict[str, Any]
    sender: InstanceId
    recipient: InstanceId
    message_id: MessageId
    timestamp: int = Field(ge=0)
    in_reply_to: MessageId | None = None
    signature: str = ""

    def canonical(self) -> bytes:
        """The exact bytes the signature covers (see the module docstring)."""
        return SIGNING_CONTEXT + canonical_json(self.unsigned())

    def unsigned(self) -> dict[str, Any]:
        """The wire fields the signature covers."""
        data = self.model_dump(mode="json", by_alias=True)
        data.pop("signature", None)
        return data

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical form: identifies the content of a message id."""
        return hashlib.sha256(self.canonical()).hexdigest()

    def signature_bytes(self) -> bytes:
        """The signature decoded; SignatureError if it is not base64 of 64 bytes."""
        try:
            raw = base64.b64decode(self.signature.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise SignatureError("signature is not valid base64") from exc
        if len(raw) != 64:
            raise SignatureError("an Ed25519 signature has 64 bytes")
        return raw


def canonical_json(data: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: the same bytes for the same data."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def new_message_id() -> str:
    """A random message id (32 hex characters)."""
    return uuid.uuid4().hex


def seal(
    identity: Identity,
    type_: EnvelopeType,
    payload: dict[str, Any],
    recipient: str,
    *,
    in_reply_to: str | None = None,
    message_id: str | None = None,
    timestamp: int | None = None,
) -> Envelope:
    """Build and sign an envelope from ``identity`` to ``recipient``."""
    draft = Envelope(
        type=type_,
        payload=payload,
        sender=identity.instance_id,
        recipient=recipient,
        message_id=message_id or new_message_id(),
        timestamp=now_ms() if timestamp is None else timestamp,
        in_reply_to=in_reply_to,
    )
    signature = base64.b64encode(identity.sign(draft.canonical())).decode("ascii")
    return draft.model_copy(update={"signature": signature})


def parse(raw: bytes | str) -> Envelope:
    """Parse an envelope from the wire; InvalidEnvelopeError naming the field if malformed."""
    try:
        return Envelope.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidEnvelopeError(f"{field}: {first.get('msg')}") from exc


def check_signature(envelope: Envelope, public_key: str) -> None:
    """SignatureError unless the signature verifies against ``public_key``."""
    if not verify(public_key, envelope.signature_bytes(), envelope.canonical()):
        raise SignatureError(f"signature of message {envelope.message_id} does not verify")


def check_fresh(envelope: Envelope, window_seconds: float, now: int | None = None) -> None:
    """StaleMessageError if the timestamp is further than the window from now."""
    now = now_ms() if now is None else now
    skew = abs(now - envelope.timestamp) / 1000
    if skew > window_seconds:
        raise StaleMessageError(
            f"message {envelope.message_id} is {skew:.0f}s off this instance's clock "
            f"(window {window_seconds:.0f}s)"
        )


def check_addressed(envelope: Envelope, me: str) -> None:
    """InvalidEnvelopeError unless the envelope is addressed to ``me``."""
    if envelope.recipient != me:
        raise InvalidEnvelopeError(f"recipient: message is for {envelope.recipient}, not {me}")
