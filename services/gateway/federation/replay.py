"""Replay protection with safe retries, in Valkey.

Keys (``<p>`` is the store prefix; both expire after the replay TTL, at least twice the
clock window, so an id is remembered for as long as its message could be fresh):

- ``<p>:federation:seen:<sender>:<messageId>``  SHA-256 of the message's canonical form,
  claimed with ``SET NX``: the first arrival wins and is executed;
- ``<p>:federation:answer:<sender>:<messageId>``  the signed answer, once there is one.

A message id seen before is never executed again. If the content is identical (the
sender retrying the very same signed message after a lost answer) the stored answer is
returned; if it differs (an altered message reusing an id) it is refused.
"""

from __future__ import annotations

from enum import Enum

from redis.asyncio import Redis

from shared.federation.envelope import Envelope
from shared.federation.errors import InProgressError, ReplayError


class Claim(Enum):
    """What ``ReplayGuard.claim`` found."""

    NEW = "new"
    """First arrival: execute it, then ``remember`` the answer."""
    REPEAT = "repeat"
    """The same message again: answer with ``answer_of`` (never execute)."""


class ReplayGuard:
    """Seen message ids and their answers, per sender."""

    def __init__(self, redis: Redis, prefix: str, ttl_seconds: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _key(self, kind: str, envelope: Envelope) -> str:
        return ":".join((self._prefix, "federation", kind, envelope.sender, envelope.message_id))

    async def claim(self, envelope: Envelope) -> Claim:
        """Record the message id; ``ReplayError`` if it was seen with other content."""
        digest = envelope.digest()
        key = self._key("seen", envelope)
        if await self._redis.set(key, digest, nx=True, ex=self._ttl):
            return Claim.NEW
        seen = await self._redis.get(key)
        seen_text = seen.decode() if isinstance(seen, bytes) else seen
        if seen_text != digest:
            raise ReplayError(
                f"message id {envelope.message_id} was already used for a different message"
            )
        return Claim.REPEAT

    async def remember(self, envelope: Envelope, answer: bytes) -> None:
        """Store the signed answer to ``envelope`` for repeats of it."""
        await self._redis.set(self._key("answer", envelope), answer, ex=self._ttl)

    async def answer_of(self, envelope: Envelope) -> bytes:
        """The stored answer to a repeat; ``InProgressError`` while there is none yet."""
        answer = await self._redis.get(self._key("answer", envelope))
        if answer is None:
            raise InProgressError(f"message {envelope.message_id} is still being executed")
        return answer if isinstance(answer, bytes) else answer.encode()

    async def release(self, envelope: Envelope) -> None:
        """Forget a claim whose execution failed for a retryable reason (nothing was done)."""
        await self._redis.delete(self._key("seen", envelope))
