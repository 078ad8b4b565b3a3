"""Spans of tasks from a service's span bus, over a real NATS, kept per trace in a real
Valkey by the gateway's collector: capped, with a TTL, malformed batches dropped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from faststream.nats import NatsBroker
from opentelemetry.sdk.trace import TracerProvider

from services.gateway.traces import SpanCollector
from shared import subjects, tracing
from shared.bus import make_broker
from shared.messages.traces import TraceSpan
from shared.settings import NatsSettings
from shared.spanbus import SpanBus
from shared.store import StateStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[NatsBroker]:
    broker = make_broker(NatsSettings(nats_url=nats_url), "trace-test")
    await broker.start()
    yield broker
    await broker.stop()


@pytest.fixture
async def collector(broker: NatsBroker, store: StateStore) -> AsyncIterator[SpanCollector]:
    collector = SpanCollector(broker.connection, store, cap=50, ttl_s=600)
    await collector.start()
    yield collector
    await collector.stop()


async def spans_of(store: StateStore, trace_id: str, count: int) -> list[TraceSpan]:
    for _ in range(100):
        spans = await store.trace_spans(trace_id)
        if len(spans) >= count:
            return spans
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} span(s) of {trace_id} never arrived: {spans}")


async def test_a_services_task_spans_reach_the_store_in_one_trace(
    broker: NatsBroker, collector: SpanCollector, store: StateStore, unique: str
) -> None:
    provider = TracerProvider()
    bus = SpanBus("spawner", tracing.AGENT_ID, delay_s=0.05)
    provider.add_span_processor(bus)
    bus.use(broker)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("attempt", attributes={tracing.AGENT_ID: unique}) as root:
        with tracer.start_as_current_span("tool write_file", attributes={tracing.AGENT_ID: unique}):
            pass
        with tracer.start_as_current_span("not a task's"):  # no agent id: never published
            pass
    trace_id = format(root.get_span_context().trace_id, "032x")
    spans = await spans_of(store, trace_id, 2)
    await asyncio.sleep(0.3)  # nothing else comes
    spans = await store.trace_spans(trace_id)
    assert sorted(s.name for s in spans) == ["attempt", "tool write_file"]
    by_name = {s.name: s for s in spans}
    assert by_name["tool write_file"].parent_id == by_name["attempt"].span_id
    assert by_name["attempt"].parent_id is None
    assert {s.service for s in spans} == {"spawner"}
    assert bus.dropped == 0


async def test_a_trace_is_capped_and_expires(store: StateStore, unique: str) -> None:
    trace_id = unique.ljust(32, "0")
    spans = [
        TraceSpan(span_id=f"{n:016x}", name=f"s{n}", service="x", start=n, end=n + 1)
        for n in range(8)
    ]
    await store.add_trace_spans(trace_id, spans[:5], cap=6, ttl_s=120)
    await store.add_trace_spans(trace_id, spans[5:], cap=6, ttl_s=120)
    kept = await store.trace_spans(trace_id)
    assert [s.name for s in kept] == ["s2", "s3", "s4", "s5", "s6", "s7"]  # the newest six
    ttl = await store.redis.ttl(store.key("trace", trace_id, "spans"))
    assert 0 < ttl <= 120


async def test_a_malformed_batch_is_dropped_and_collecting_goes_on(
    broker: NatsBroker, collector: SpanCollector, store: StateStore, unique: str
) -> None:
    trace_id = unique.ljust(32, "1")
    nc = broker.connection
    await nc.publish(subjects.TRACE_SPANS, b'{"spans": [{"traceId": "not hex"}]}')
    await nc.publish(subjects.TRACE_SPANS, b"not json at all")
    sent = {"spanId": "00000000000000aa", "name": "ok", "service": "gates", "start": 1, "end": 2}
    good = json.dumps({"spans": [{"traceId": trace_id, "span": sent}]})
    await nc.publish(subjects.TRACE_SPANS, good.encode())
    [span] = await spans_of(store, trace_id, 1)
    assert (span.name, span.service, span.parent_id) == ("ok", "gates", None)
