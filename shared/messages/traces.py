"""Finished spans of a task's trace, as services publish them and the gateway answers them.

A span's times are Unix epoch **milliseconds** (floats, microsecond precision), so a
timeline needs no date parsing. Attributes are the span's own (ids, model, token counts,
tool names, outcomes), never a secret: see ``shared.tracing``.
"""

from __future__ import annotations

from pydantic import Field

from shared.messages.base import CamelModel, Message

AttributeValue = str | bool | int | float | list[str] | list[bool] | list[int] | list[float]


class TraceSpan(Message):
    """One finished span: ``spanId``, ``parentId``, ``name``, ``service``, ``start``,
    ``end``, ``attributes`` on the wire (exactly these keys)."""

    span_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    parent_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    """The parent span, possibly in another service; ``None`` for the task's root."""
    name: str = Field(max_length=200)
    service: str = Field(max_length=100)
    start: float
    """Start, Unix epoch milliseconds."""
    end: float
    """End, Unix epoch milliseconds."""
    attributes: dict[str, AttributeValue] = {}


class SpanFinished(Message):
    """A span of one task's trace, as published on ``mosaic.traces.spans``."""

    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    span: TraceSpan


class SpansFinished(Message):
    """One batch of finished spans from one service process (fire-and-forget)."""

    spans: tuple[SpanFinished, ...] = Field(max_length=1000)


class AgentTrace(CamelModel):
    """``GET /agents/{agentId}/trace``: the task's trace id and its spans by start time."""

    trace_id: str
    spans: list[TraceSpan]
