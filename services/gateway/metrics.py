"""The gateway's Prometheus metrics, on a registry of its own (one per app, so tests that
build several apps in one process never collide)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.messages.agents import AgentState, TaskState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class GatewayMetrics:
    """HTTP traffic, spawn acceptance latency, agents by state and the live feed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mosaic_gateway_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "mosaic_gateway_http_request_duration_seconds",
            "Time to answer an HTTP request (streams: until the stream starts).",
            ["method", "route"],
            registry=r,
        )
        self.spawn_accept = Histogram(
            "mosaic_gateway_spawn_accept_seconds",
            "Time from receiving POST /agents/spawn to the task being durable in the queue.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.agents = Gauge(
            "mosaic_agents",
            "Agents in each state (read from Valkey on scrape).",
            ["state"],
            registry=r,
        )
        self.tasks = Gauge(
            "mosaic_tasks",
            "Tasks in each state (read from Valkey on scrape).",
            ["state"],
            registry=r,
        )
        self.events_streamed = Counter(
            "mosaic_gateway_events_streamed",
            "Agent events sent to live-feed clients, by transport.",
            ["transport"],
            registry=r,
        )
        self.feed_clients = Gauge(
            "mosaic_gateway_feed_clients",
            "Live-feed clients connected now, by transport.",
            ["transport"],
            registry=r,
        )
        self.feed_dropped = Counter(
            "mosaic_gateway_feed_clients_dropped",
            "Live-feed clients dropped because they fell too far behind.",
            ["transport"],
            registry=r,
        )
        self.federation_unverified = Counter(
            "mosaic_gateway_federation_unverified",
            "Requests to /federation that proved nothing (bad envelope, unknown sender, bad "
            "signature, stale) or were rate-limited for it; by error code. Not audited.",
            ["code"],
            registry=r,
        )
        self.ws_refused = Counter(
            "mosaic_gateway_ws_refused",
            "WebSocket handshakes refused before accept, by reason (unauthorized, full).",
            ["reason"],
            registry=r,
        )
        self.spend = SpendCollector()
        r.register(self.spend)
        for transport in ("sse", "ws"):
            self.feed_clients.labels(transport)
            self.events_streamed.labels(transport)
            self.feed_dropped.labels(transport)

    def set_counts(self, counts: dict[str, dict[str, int]]) -> None:
        """Set the state gauges from the store's counters (every state, zero included)."""
        for agent_state in AgentState:
            self.agents.labels(agent_state.value).set(counts["state"].get(agent_state.value, 0))
        for task_state in TaskState:
            self.tasks.labels(task_state.value).set(counts["task_state"].get(task_state.value, 0))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class SpendCollector(Collector):
    """``mosaic_spend_usd_total`` (by model and agent type) and
    ``mosaic_spend_tokens_total`` (also by kind of token), from the store's all-time
    counters (``StateStore.spend_totals``), which every spawner's charges add to: so any
    gateway reports the whole deployment's spend, and a restart loses nothing."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def collect(self) -> list[Metric]:
        """The two counter families from the last read totals."""
        usd = CounterMetricFamily(
            "mosaic_spend_usd",
            "US dollars spent on model calls (the AI reviewer's included), priced from the "
            "reported usage with the price table.",
            labels=["model", "agent_type"],
        )
        tokens = CounterMetricFamily(
            "mosaic_spend_tokens",
            "Tokens of model calls by kind: input_tokens (uncached), output_tokens, "
            "cache_write_tokens, cache_read_tokens.",
            labels=["model", "agent_type", "kind"],
        )
        for key, value in sorted(self.totals.items()):
            parts = key.split("|")
            if parts[0] == "usd" and len(parts) == 3:
                usd.add_metric(parts[1:], value)
            elif parts[0] == "tokens" and len(parts) == 4:
                tokens.add_metric(parts[1:], value)
        return [usd, tokens]

    def describe(self) -> list[Metric]:
        """Described without reading (no Valkey at registration)."""
        return []


class RequestMetrics:
    """ASGI middleware counting HTTP answers by route template (never by raw path)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        timed = False

        async def send_and_count(message: Message) -> None:
            nonlocal status, timed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                route = _route_of(scope)
                self.metrics.latency.labels(_method(scope), route).observe(
                    time.perf_counter() - started
                )
                timed = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            route = _route_of(scope)
            if not timed:
                self.metrics.latency.labels(_method(scope), route).observe(
                    time.perf_counter() - started
                )
            self.metrics.requests.labels(_method(scope), route, str(status)).inc()


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "OTHER"
