"""The provider contract: what the loop asks a model for and what it gets back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolDefinition:
    """A tool as the model sees it: name, what it does, JSON schema of its input."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for; ``input`` is unvalidated model output."""

    id: str
    name: str
    input: Any


@dataclass(frozen=True)
class ToolResult:
    """What went back to the model for one tool call (``is_error`` for refusals and failures)."""

    tool_use_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Usage:
    """Tokens of one model call, each kind apart (each has its own price): ``input`` is
    the uncached input only, as the API reports it."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def all_input(self) -> int:
        """Every input token: uncached, written to the cache and read from it."""
        return self.input + self.cache_read + self.cache_write

    @property
    def total(self) -> int:
        """What the token budget is charged: every token of the call."""
        return self.all_input + self.output


@dataclass(frozen=True)
class ModelTurn:
    """One model response: text, tool calls, why it stopped and what it cost."""

    stop_reason: str
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = Usage()


class Provider(Protocol):
    """A model behind the loop, stateful for one agent run (it keeps the conversation)."""

    name: str

    async def start(self, system: str, tools: Sequence[ToolDefinition], task: str) -> None:
        """Begin the conversation: a stable system prompt, the tools, the task message."""
        ...

    async def next_turn(
        self, results: Sequence[ToolResult], notice: str | None = None
    ) -> ModelTurn:
        """The model's next turn, given the results of its previous tool calls.

        The first call sends the task. ``notice`` is extra user text (a truncated reply,
        a rejected end of turn) sent along with, or instead of, tool results.
        Raises ``ProviderError`` when no turn can be had.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; safe to call twice."""
        ...
