"""The live event feed: one NATS subscription on ``mosaic.events.>``, fanned out to
SSE and WebSocket clients through bounded queues.

Ordering: an agent's events are published by several services over several NATS
connections, so they may arrive out of ``seq`` order. The hub keeps, per agent, the last
``seq`` it delivered; a later event waits while the missing ones are read from the
Valkey history (where every event is stored before it is published). If an event is
still missing after ``feed_reorder_wait_s`` the hub moves on rather than stall.

A client whose queue is full is dropped (it gets one ``dropped`` notice and its stream
ends); delivery to the others never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from services.gateway.metrics import GatewayMetrics
from shared import subjects
from shared.messages.agents import AgentEvent
from shared.messages.base import utcnow
from shared.store import StateStore

log = logging.getLogger(__name__)

Transport = Literal["sse", "ws"]
_MAX_AGENTS_TRACKED = 10_000
_BASELINE_WINDOW = 500


class FeedClient:
    """One connected client: an optional agent filter and a bounded queue."""

    def __init__(self, agent_id: str | None, transport: Transport, size: int) -> None:
        self.agent_id = agent_id
        self.transport = transport
        self.dropped = False
        self._queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue(maxsize=size)

    def wants(self, event: AgentEvent) -> bool:
        """Whether this client's filter lets the event through."""
        return self.agent_id is None or self.agent_id == event.agent_id

    def offer(self, event: AgentEvent) -> bool:
        """Queue without waiting; False (and the client marked dropped) when it is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self.close()
            return False
        return True

    def close(self) -> None:
        """End the client's stream: whatever is queued is discarded."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self, timeout: float | None = None) -> AgentEvent | None:
        """The next event; None once dropped; ``TimeoutError`` when idle for ``timeout``."""
        return await asyncio.wait_for(self._queue.get(), timeout)


@dataclass
class _Order:
    last: int
    held: dict[int, AgentEvent] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class FeedHub:
    """Subscribes once, orders each agent's events by ``seq``, fans out to clients."""

    def __init__(
        self,
        nc: NatsClient,
        store: StateStore,
        metrics: GatewayMetrics,
        *,
        queue_size: int,
        reorder_wait: float,
    ) -> None:
        self._nc = nc
        self._store = store
        self._metrics = metrics
        self._queue_size = queue_size
        self._reorder_wait = reorder_wait
        self._clients: set[FeedClient] = set()
        self._orders: OrderedDict[str, _Order] = OrderedDict()
        self._sub: Subscription | None = None
        self._subscribed_at = utcnow()

    @property
    def clients(self) -> int:
        """How many clients are connected."""
        return len(self._clients)

    async def start(self) -> None:
        """Subscribe to every agent event."""
        self._subscribed_at = utcnow()
        self._sub = await self._nc.subscribe(subjects.EVENTS_ALL, cb=self._on_message)

    async def stop(self) -> None:
        """Unsubscribe and end every client's stream."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        for order in self._orders.values():
            if order.timer is not None:
                order.timer.cancel()
        self.close_clients()

    def close_clients(self) -> None:
        """End every client's stream (the server is shutting down)."""
        for client in list(self._clients):
            client.close()
            self.disconnect(client)

    def count(self, transport: Transport) -> int:
        """How many clients of ``transport`` are connected."""
        return sum(1 for c in self._clients if c.transport == transport)

    def connect(self, agent_id: str | None, transport: Transport) -> FeedClient:
        """Register a client; events flow into its queue from now on."""
        client = FeedClient(agent_id, transport, self._queue_size)
        self._clients.add(client)
        self._metrics.feed_clients.labels(transport).inc()
        return client

    def disconnect(self, client: FeedClient) -> None:
        """Forget a client (idempotent)."""
        if client in self._clients:
            self._clients.discard(client)
            self._metrics.feed_clients.labels(client.transport).dec()

    async def _on_message(self, msg: Msg) -> None:
        try:
            event = AgentEvent.from_bytes(msg.data)
        except ValidationError:
            log.debug("ignored a malformed event on %s", msg.subject)
            return
        await self.deliver(event)

    async def deliver(self, event: AgentEvent) -> None:
        """Take an event stored in the history: from NATS, or one this gateway wrote
        itself (it may not publish ``mosaic.events.>``; other gateways catch up from the
        history when the agent's next event arrives)."""
        try:
            await self._accept(event)
        except Exception:  # a Valkey hiccup must not end the subscription
            log.warning("feed could not order an event of %s", event.agent_id, exc_info=True)
            self._fan_out(event)

    async def _accept(self, event: AgentEvent) -> None:
        if event.seq <= 0:
            self._fan_out(event)
            return
        order = self._orders.get(event.agent_id)
        if order is None:
            order = await self._baseline(event.agent_id)
        self._orders.move_to_end(event.agent_id)
        if event.seq <= order.last:
            return
        order.held[event.seq] = event
        self._flush(order)
        if not order.held:
            return
        await self._fill(event.agent_id, order)
        self._flush(order)
        if order.held and order.timer is None:
            order.timer = asyncio.get_running_loop().call_later(
                self._reorder_wait, self._give_up, order
            )

    async def _baseline(self, agent_id: str) -> _Order:
        """Events stored before we subscribed are history, not news."""
        history = await self._store.events(agent_id, -_BASELINE_WINDOW, -1)
        before = [e.seq for e in history if e.at < self._subscribed_at]
        order = _Order(last=max(before, default=0))
        self._orders[agent_id] = order
        while len(self._orders) > _MAX_AGENTS_TRACKED:
            _, old = self._orders.popitem(last=False)
            if old.timer is not None:
                old.timer.cancel()
        return order

    async def _fill(self, agent_id: str, order: _Order) -> None:
        start = max(order.last - 8, 0)
        for stored in await self._store.events(agent_id, start, -1):
            if stored.seq > order.last and stored.seq not in order.held:
                order.held[stored.seq] = stored

    def _flush(self, order: _Order) -> None:
        while order.last + 1 in order.held:
            order.last += 1
            self._fan_out(order.held.pop(order.last))
        if not order.held and order.timer is not None:
            order.timer.cancel()
            order.timer = None

    def _give_up(self, order: _Order) -> None:
        order.timer = None
        for seq in sorted(order.held):
            self._fan_out(order.held.pop(seq))
            order.last = seq

    def _fan_out(self, event: AgentEvent) -> None:
        for client in list(self._clients):
            if client.wants(event) and not client.offer(event):
                log.warning(
                    "dropped a %s feed client that fell %d events behind",
                    client.transport,
                    self._queue_size,
                )
                self._metrics.feed_dropped.labels(client.transport).inc()
                self.disconnect(client)


async def follow(
    hub: FeedHub,
    store: StateStore,
    client: FeedClient,
    since: int | None,
    heartbeat: float | None = None,
) -> AsyncIterator[AgentEvent | None]:
    """A client's events: history after ``since`` first (one agent only), then live.

    Yields None on an idle ``heartbeat`` interval; ends when the client is dropped
    (``client.dropped`` tells the caller why).
    """
    floor = 0
    if since is not None and client.agent_id is not None:
        floor = since
        for stored in await store.events(client.agent_id):
            if stored.seq > floor:
                floor = stored.seq
                yield stored
    while True:
        try:
            event = await client.next(heartbeat)
        except TimeoutError:
            yield None
            continue
        if event is None:
            return
        if floor and event.agent_id == client.agent_id and 0 < event.seq <= floor:
            continue
        yield event
