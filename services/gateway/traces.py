"""Keeps the spans of tasks that services publish, per trace in Valkey (capped, with a
TTL), so ``GET /agents/{agentId}/trace`` answers without an external collector.

One gateway of the queue group stores each batch; a batch that does not parse or cannot
be stored is dropped with a warning (spans are a view of the work, never part of it).
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from redis.exceptions import RedisError

from shared import subjects
from shared.messages.traces import SpansFinished, TraceSpan
from shared.store import StateStore

log = logging.getLogger(__name__)


class SpanCollector:
    """Subscribes ``mosaic.traces.spans`` and appends each batch to its traces."""

    def __init__(self, nc: Client, store: StateStore, *, cap: int, ttl_s: int) -> None:
        self._nc = nc
        self._store = store
        self._cap = cap
        self._ttl_s = ttl_s
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Begin collecting (queue group: several gateways store each batch once)."""
        self._sub = await self._nc.subscribe(
            subjects.TRACE_SPANS, queue=subjects.TRACE_COLLECTORS, cb=self.on_batch
        )

    async def stop(self) -> None:
        """Stop collecting."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def on_batch(self, msg: Msg) -> None:
        """Store one published batch, grouped by trace."""
        try:
            batch = SpansFinished.from_bytes(msg.data)
        except ValidationError as exc:
            log.warning("dropped a malformed span batch: %d problem(s)", exc.error_count())
            return
        by_trace: dict[str, list[TraceSpan]] = defaultdict(list)
        for finished in batch.spans:
            by_trace[finished.trace_id].append(finished.span)
        for trace_id, spans in by_trace.items():
            try:
                await self._store.add_trace_spans(trace_id, spans, cap=self._cap, ttl_s=self._ttl_s)
            except (RedisError, OSError):
                log.warning("could not keep %d span(s) of trace %s", len(spans), trace_id)
