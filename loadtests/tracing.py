"""What a span costs: ``python -m loadtests.tracing [--spans N]``.

Each figure is printed beside its floor, measured in the same run on this machine:

- a span with tracing off (OpenTelemetry's no-op) against an empty ``with`` block;
- a span of a task with the SDK and the span bus installed (``shared.tracing.setup``
  with ``MOSAIC_TRACES`` on), against the same no-op span;
- the span bus's delivery: how long until every span of a burst has reached a
  subscriber of ``mosaic.traces.spans`` on a real nats-server, against the same number
  of bytes published raw on NATS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from mosaic.embedded import start_nats
from shared import subjects, tracing
from shared.bus import make_broker
from shared.messages.traces import SpansFinished
from shared.settings import NatsSettings


def _per_span_us(spans: int, body: Any) -> float:
    started = time.perf_counter()
    for _ in range(spans):
        with body():
            pass
    return (time.perf_counter() - started) / spans * 1e6


def _task_span() -> Any:
    return tracing.span("tool read_file", agent_id="a" * 16, task_id="bench")


async def _delivery(nats_url: str, spans: int) -> dict[str, Any]:
    broker = make_broker(NatsSettings(nats_url=nats_url), "bench")  # the bus publishes on it
    await broker.start()
    nc = broker.connection
    received = 0
    payload = 0
    done = asyncio.Event()

    async def count(msg: Any) -> None:
        nonlocal received, payload
        received += len(SpansFinished.from_bytes(msg.data).spans)
        payload += len(msg.data)
        if received >= spans:
            done.set()

    sub = await nc.subscribe(subjects.TRACE_SPANS, cb=count)
    try:
        started = time.perf_counter()
        per_span = _per_span_us(spans, _task_span)
        await asyncio.wait_for(done.wait(), 60)
        bus_s = time.perf_counter() - started
        raw = b"x" * max(1, payload // max(1, spans // 200))  # the same bytes, raw
        raw_started = time.perf_counter()
        for _ in range(max(1, spans // 200)):
            await nc.publish("bench.raw", raw)
        await nc.flush()
        raw_s = time.perf_counter() - raw_started
    finally:
        await sub.unsubscribe()
        await broker.stop()
    return {
        "spanWithBusUs": round(per_span, 2),
        "burstDeliveredS": round(bus_s, 3),
        "bytesPerSpan": round(payload / spans, 1),
        "rawPublishSameBytesS": round(raw_s, 4),
    }


def main() -> int:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.tracing", description=__doc__)
    parser.add_argument(
        "--spans",
        type=int,
        default=5000,
        help="spans per figure; at most 10000 (the bus buffers that many between batches)",
    )
    args = parser.parse_args()
    if not 200 <= args.spans <= 10_000:
        parser.error("--spans must be 200..10000")
    figures: dict[str, Any] = {"spans": args.spans}
    figures["floorEmptyWithUs"] = round(_per_span_us(args.spans, contextlib.nullcontext), 3)
    figures["noopSpanUs"] = round(_per_span_us(args.spans, _task_span), 3)
    if tracing.setup("bench", tracing.TracingSettings(mosaic_traces=True)) is None:
        raise SystemExit("tracing could not be installed")
    with tempfile.TemporaryDirectory(prefix="mosaic-trace-bench-") as data:
        server = start_nats(Path(data))
        try:
            figures |= asyncio.run(_delivery(f"nats://127.0.0.1:{server.port}", args.spans))
        finally:
            server.stop()
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
