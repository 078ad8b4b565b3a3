"""What model calls cost: one call's reported usage, an agent's running spend, a task's budget."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from shared.messages.base import Message

Count = Annotated[int, Field(ge=0)]


class TokenUsage(Message):
    """The usage one model call reported, the four kinds kept apart because each has
    its own price: ``input_tokens`` is the uncached input only (the API reports cache
    writes and reads beside it, not inside it)."""

    model: str
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_write_tokens: Count = 0
    cache_read_tokens: Count = 0

    @property
    def tokens(self) -> int:
        """Every token of the call, of all four kinds (what a token budget is charged)."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_write_tokens
            + self.cache_read_tokens
        )


class Spend(Message):
    """An agent's spend so far (every attempt, the AI reviewer's calls included), as
    ``GET /agents/{id}/status`` shows it under ``spend``."""

    usd: Annotated[float, Field(ge=0)] = 0.0
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_write_tokens: Count = 0
    cache_read_tokens: Count = 0

    @property
    def tokens(self) -> int:
        """Every token spent, of all four kinds (what a token budget is compared with)."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_write_tokens
            + self.cache_read_tokens
        )


class TaskBudget(Message):
    """``options.budget``: the most one task may spend, in tokens (all four kinds
    counted) and/or US dollars; reaching either stops it (``failed``, reason ``budget``)."""

    tokens: Annotated[int, Field(gt=0, le=10**12)] | None = None
    usd: Annotated[float, Field(gt=0, le=10**7)] | None = None

    @model_validator(mode="after")
    def _names_a_limit(self) -> Self:
        if self.tokens is None and self.usd is None:
            raise ValueError("a budget needs tokens or usd (or both)")
        return self

    def exceeded_by(self, spend: Spend) -> str | None:
        """Why ``spend`` has reached this budget, or None while it has not."""
        if self.tokens is not None and spend.tokens >= self.tokens:
            return f"task budget of {self.tokens} tokens reached ({spend.tokens} used)"
        if self.usd is not None and spend.usd >= self.usd:
            return f"task budget of ${self.usd:.4f} reached (${spend.usd:.4f} spent)"
        return None
