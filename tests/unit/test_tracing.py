"""The trace context in NATS headers, the span helpers and the wire form of spans.

Spans are recorded by the real OpenTelemetry SDK into its in-memory exporter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared import tracing
from shared.messages.traces import SpansFinished
from shared.spanbus import SpanBus, to_message

pytestmark = pytest.mark.unit


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider, recording into an in-memory exporter for this test
    only (shut down after it, so later tests in the session do not fill it)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        tracing.install(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def by_name(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def test_inject_then_extract_continues_the_same_trace(spans: InMemorySpanExporter) -> None:
    with tracing.span("caller", agent_id="a1", task_id="t1"):
        headers = tracing.inject({"Nats-Msg-Id": "t1"})
        caller_trace = tracing.current_trace_id()
    assert headers["Nats-Msg-Id"] == "t1"  # what was there stays
    assert set(headers) == {"Nats-Msg-Id", "traceparent"}  # no baggage crosses the bus
    with tracing.serving("callee", headers) as callee:
        assert tracing.current_trace_id() == caller_trace
        assert callee.get_span_context().trace_id == int(caller_trace or "0", 16)
    caller, served = by_name(spans, "caller"), by_name(spans, "callee")
    assert served.parent is not None
    assert served.parent.span_id == caller.context.span_id
    assert served.parent.is_remote
    assert served.kind is SpanKind.SERVER


def test_headers_without_a_context_start_a_new_trace(spans: InMemorySpanExporter) -> None:
    for headers in (None, {}, {"traceparent": "garbage"}, {"Nats-Msg-Id": "x"}):
        with tracing.serving("fresh", headers):
            pass
        [span] = spans.get_finished_spans()
        assert span.parent is None
        spans.clear()


def test_inject_outside_a_span_adds_nothing() -> None:
    assert tracing.inject({"a": "b"}) == {"a": "b"}
    assert tracing.current_traceparent() is None
    assert tracing.current_trace_id() is None


def test_traceparent_round_trip_gives_the_parent(spans: InMemorySpanExporter) -> None:
    with tracing.span("root"):
        kept = tracing.current_traceparent()
    assert kept is not None
    with tracing.span("later", parent=tracing.parent_from(kept)):
        pass
    root, later = by_name(spans, "root"), by_name(spans, "later")
    assert later.parent is not None
    assert later.parent.span_id == root.context.span_id
    assert tracing.trace_id_of(kept) == format(root.context.trace_id, "032x")
    assert tracing.trace_id_of("not-a-traceparent") is None
    assert tracing.trace_id_of(None) is None
    assert tracing.parent_from(None) is None


def test_children_inherit_the_task_ids(spans: InMemorySpanExporter) -> None:
    with (
        tracing.span("attempt", agent_id="a9", task_id="t9"),
        tracing.span("tool"),
        tracing.span("deeper", agent_id="other"),
    ):
        pass
    tool, deeper = by_name(spans, "tool"), by_name(spans, "deeper")
    assert tool.attributes is not None
    assert deeper.attributes is not None
    assert tool.attributes[tracing.AGENT_ID] == "a9"
    assert tool.attributes[tracing.TASK_ID] == "t9"
    assert deeper.attributes[tracing.AGENT_ID] == "other"  # its own id wins


def test_an_error_records_its_type_never_its_message(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="sk-ant"), tracing.span("fails"):
        raise ValueError("bad key sk-ant-api03-secretsecret")
    failed = by_name(spans, "fails")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError"
    assert failed.events == ()  # no exception event with the message or a stack


async def test_a_cancellation_marks_the_span_cancelled(spans: InMemorySpanExporter) -> None:
    async def work() -> None:
        with tracing.span("cancelled work"):
            await asyncio.sleep(30)

    task = asyncio.create_task(work())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = by_name(spans, "cancelled work")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "cancelled"


@pytest.mark.parametrize(
    ("command", "word"),
    [
        ("pytest -q tests/", "pytest"),
        ("/usr/bin/python3 -c 'print(1)'", "python3"),
        ("API_TOKEN=sk-ant-api03-abcdef curl -H 'x: y' https://example.org", "curl"),
        ("A=1 B=two ./run.sh --password hunter2", "run.sh"),
        ("echo 'unbalanced", "echo"),
        ("   ", "(empty)"),
        ("FOO=bar", "(empty)"),
    ],
)
def test_a_command_is_recorded_as_its_program_only(command: str, word: str) -> None:
    assert tracing.command_word(command) == word


def test_the_wire_form_masks_secrets_and_keeps_the_tree(spans: InMemorySpanExporter) -> None:
    with (
        tracing.span("root", agent_id="a1", task_id="t1"),
        tracing.model_call("anthropic", "claude-test") as model,
    ):
        tracing.record_usage(
            model, input_tokens=12, output_tokens=34, cache_read=5, stop_reason="tool_use"
        )
        model.set_attribute("leak", "token ghp_" + "a" * 36)
    root, model_span = by_name(spans, "root"), by_name(spans, "model claude-test")
    message = to_message(model_span, "spawner")
    assert message.trace_id == format(root.context.trace_id, "032x")
    assert message.span.parent_id == format(root.context.span_id, "016x")
    assert message.span.service == "spawner"
    attributes = message.span.attributes
    assert attributes["gen_ai.request.model"] == "claude-test"
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 34
    assert attributes["mosaic.usage.cache_read_tokens"] == 5
    assert attributes["gen_ai.response.finish_reasons"] == ["tool_use"]
    assert attributes[tracing.AGENT_ID] == "a1"
    assert "ghp_" + "a" * 36 not in str(attributes["leak"])
    assert message.span.end >= message.span.start > 1e12  # epoch milliseconds
    wire = message.span.model_dump(mode="json")
    assert set(wire) == {"spanId", "parentId", "name", "service", "start", "end", "attributes"}
    root_wire = to_message(root, "spawner").span
    assert root_wire.parent_id is None


class _Recorder:
    """Stands in for NATS only to see what the bus would publish (the bus is real)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str]] = []

    async def publish(self, message: bytes, subject: str) -> None:
        self.sent.append((message, subject))


async def test_the_bus_sends_only_spans_of_tasks_in_batches() -> None:
    provider = TracerProvider()  # its own provider: the bus alone, no global state
    bus = SpanBus("gitops", tracing.AGENT_ID, delay_s=0.01)
    provider.add_span_processor(bus)
    recorder = _Recorder()
    bus.use(recorder)
    tracer = provider.get_tracer("test")
    for n in range(3):
        with tracer.start_as_current_span(f"task span {n}", attributes={tracing.AGENT_ID: "a"}):
            pass
    with tracer.start_as_current_span("health probe"):
        pass
    await asyncio.sleep(0.1)
    [(body, subject)] = recorder.sent
    assert subject == "mosaic.traces.spans"
    batch = SpansFinished.from_bytes(body)
    assert [s.span.name for s in batch.spans] == ["task span 0", "task span 1", "task span 2"]
    assert {s.span.service for s in batch.spans} == {"gitops"}
