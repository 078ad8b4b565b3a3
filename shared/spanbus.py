"""A span processor that publishes the finished spans of tasks on NATS, for the gateway.

Without an external collector the gateway still has every task's trace: each service
process publishes its finished spans that belong to a task (they carry
``mosaic.agent_id``) as small JSON batches on ``mosaic.traces.spans`` (core NATS,
fire-and-forget), and the gateway keeps them per trace in Valkey. A span is buffered
where it ends (the event loop's thread) and a batch goes out a moment later, so ending
a span never waits on the network; a batch that cannot be sent is dropped, never
retried: a trace is a view of the work, not part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import StatusCode

from shared import secrets_rules, subjects
from shared.messages.traces import AttributeValue, SpanFinished, SpansFinished, TraceSpan

log = logging.getLogger(__name__)

BATCH = 200
"""Spans per NATS message (well under the server's payload limit)."""


class Publisher(Protocol):
    """What the bus publishes with: a FastStream ``NatsBroker``."""

    async def publish(self, message: Any, subject: str) -> Any:
        """Publish ``message`` (bytes) on ``subject``."""
        ...


PLAIN = frozenset(
    {
        "mosaic.agent_id",
        "mosaic.task_id",
        "mosaic.agent_type",
        "mosaic.gate_profile",
        "mosaic.outcome",
        "mosaic.tool",
        "mosaic.error_code",
        "mosaic.gates.phase",
        "mosaic.gates.profile",
        "mosaic.kill.by",
        "mosaic.kill.state",
        "gen_ai.system",
        "gen_ai.request.model",
        "gen_ai.response.finish_reasons",
        "messaging.system",
        "messaging.destination.name",
    }
)
"""Attributes whose values Mosaic sets from ids, names and enums it controls: published
as they are. Every other string is masked (the scanner's rules cost tens of µs each)."""


def to_message(span: ReadableSpan, service: str) -> SpanFinished:
    """The wire form of a finished span: ids in hex, times in epoch milliseconds, string
    attributes other than ``PLAIN`` masked with the secret scanner's rules (a second
    line of defence; no attribute is meant to hold a secret)."""
    context = span.get_span_context()
    assert context is not None
    attributes: dict[str, AttributeValue] = {}
    for key, value in (span.attributes or {}).items():
        attributes[key] = value if key in PLAIN and isinstance(value, str) else _clean(value)
    if span.status.status_code is StatusCode.ERROR:
        attributes["otel.status_code"] = "ERROR"
        if span.status.description:
            attributes["otel.status_description"] = secrets_rules.redact(span.status.description)
    parent = span.parent
    return SpanFinished(
        trace_id=format(context.trace_id, "032x"),
        span=TraceSpan(
            span_id=format(context.span_id, "016x"),
            parent_id=format(parent.span_id, "016x") if parent is not None else None,
            name=span.name[:200],
            service=service,
            start=(span.start_time or 0) / 1e6,
            end=(span.end_time or span.start_time or 0) / 1e6,
            attributes=attributes,
        ),
    )


def _clean(value: Any) -> AttributeValue:
    if isinstance(value, str):
        return secrets_rules.redact(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Sequence):
        items = list(value)
        if all(isinstance(v, str) for v in items):
            return [secrets_rules.redact(v) for v in items]
        return [v for v in items if isinstance(v, bool | int | float)]
    return str(value)


class SpanBus(SpanProcessor):
    """Buffers the finished spans of tasks and publishes them in batches."""

    def __init__(
        self, service: str, task_attribute: str, *, delay_s: float = 0.2, max_buffer: int = 10_000
    ) -> None:
        self.service = service
        self._task_attribute = task_attribute
        self._delay_s = delay_s
        self._max_buffer = max_buffer
        self._publisher: Publisher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer: list[SpanFinished] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0
        """Spans dropped (buffer full, or their batch could not be published)."""

    def use(self, publisher: Publisher) -> None:
        """Publish with ``publisher`` from now on (the service's broker)."""
        self._publisher = publisher

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Buffer ``span`` if it belongs to a task, and schedule a batch."""
        if self._publisher is None or not (span.attributes or {}).get(self._task_attribute):
            return
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            return
        self._buffer.append(to_message(span, self.service))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a span ended off the loop's thread
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._schedule)
            return
        self._loop = loop
        self._schedule()

    def _schedule(self) -> None:
        if self._scheduled:
            return
        self._scheduled = True
        task = asyncio.get_running_loop().create_task(self._flush_later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._delay_s)
        finally:
            self._scheduled = False
        await self.flush()

    async def flush(self) -> None:
        """Publish what is buffered now."""
        batch, self._buffer = self._buffer, []
        publisher = self._publisher
        if publisher is None:
            return
        for start in range(0, len(batch), BATCH):
            chunk = tuple(batch[start : start + BATCH])
            try:
                await publisher.publish(SpansFinished(spans=chunk).to_bytes(), subjects.TRACE_SPANS)
            except Exception as exc:
                self.dropped += len(chunk)
                log.debug("spans not published (%s): %d dropped", type(exc).__name__, len(chunk))

    def shutdown(self) -> None:
        """Stop publishing; a pending batch is dropped (spans are fire-and-forget)."""
        self._publisher = None
        for task in list(self._tasks):
            with contextlib.suppress(RuntimeError):
                task.cancel()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Batches go out on the event loop (``flush``); nothing to do synchronously."""
        return True
