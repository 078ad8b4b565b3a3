"""Payloads carried in federation envelopes (the spawn payload is ``SpawnAgentRequest``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints

from shared.messages.base import Message

Nonce = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{32,128}$")]
AgentIdText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class AgentRef(Message):
    """Payload of ``agent.status`` and ``agent.kill``: which agent, and why (kill)."""

    agent_id: AgentIdText
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class KillAllOrder(Message):
    """Payload of ``agent.kill_all``: stop every agent the sender spawned here."""

    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class Hello(Message):
    """Payload of ``handshake.hello``: the initiator's fresh challenge."""

    challenge: Nonce


class HelloAnswer(Message):
    """Result of ``handshake.hello``: the initiator's challenge echoed (inside the
    responder's signed answer, which proves the responder holds its key) and the
    responder's own fresh challenge."""

    answer: Nonce
    challenge: Nonce


class Confirm(Message):
    """Payload of ``handshake.confirm``: the responder's challenge, signed by the initiator."""

    answer: Nonce


class OutcomeError(Message):
    """Why a verified command was refused or failed."""

    code: str
    message: str


class Outcome(Message):
    """Payload of every ``response`` envelope: the HTTP-like status and the result."""

    ok: bool
    status: int
    result: Any = None
    error: OutcomeError | None = None


class KillOutcome(Message):
    """One agent's state after a federated kill."""

    agent_id: str
    state: str
    killed: bool
