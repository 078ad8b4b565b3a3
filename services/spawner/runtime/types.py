"""Inputs and outputs of one agent run, independent of the provider."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from shared.messages.conversation import ConversationEntry
from shared.messages.tasks import SpawnAgentRequest

if TYPE_CHECKING:
    from services.spawner.runtime.providers.base import Usage

OutcomeStatus = Literal["finished", "failed"]


@dataclass(frozen=True)
class Bounds:
    """Limits of one run; exceeding any ends the agent ``failed`` naming the bound."""

    max_turns: int = 50
    timeout_s: float = 1800.0
    max_tokens: int = 2_000_000
    max_finish_attempts: int = 3
    """How many times a ``finish`` may be sent back (gate rejection, conflict) before failing."""


@dataclass(frozen=True)
class AgentSpec:
    """Who the agent is and what it was asked."""

    agent_id: str
    request: SpawnAgentRequest
    system_prompt: str | None = None
    """Replaces the agent type's default system prompt (e.g. the gates' AI reviewer)."""

    @property
    def task_id(self) -> str:
        """The task this agent works on."""
        return self.request.task_id


@dataclass
class AgentOutcome:
    """How a run ended: ``finished`` with the model's summary, or ``failed`` with why."""

    status: OutcomeStatus
    summary: str = ""
    reason: str | None = None
    turns: int = 0
    tokens_used: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    retryable: bool = False
    """The failure may pass on a new attempt (a model API overloaded or timing out after
    its own retries); the task's ``maxRetries`` decides. Bounds (turns, tokens, the wall
    clock) and refusals are final."""


ProgressSink = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Receives progress (``turn_started``, ``tool_called``, ``tokens_used``) with a
secret-free detail dict; the spawner turns it into agent events."""

TranscriptSink = Callable[[list[ConversationEntry]], Awaitable[None]]
"""Receives the conversation as it happens (entries already redacted and capped); the
spawner stores it for the agent's page. Best effort, like progress."""

FinishCheck = Callable[[str], Awaitable[str | None]]
"""Called with the summary when the agent calls ``finish``: ``None`` accepts; a string
(gate rejection, merge conflict details) goes back to the model as an error tool result
and the loop continues, at most ``Bounds.max_finish_attempts`` times."""

Meter = Callable[["Usage"], Awaitable[None]]
"""Told the usage of every model call as it comes back, before its tool calls run (the
spawner prices and charges it); raising ends the run with that error (a budget reached)."""
