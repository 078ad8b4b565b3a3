"""The gateway's factory: FastAPI app whose lifespan opens NATS, JetStream, Valkey and
the live feed.

Adding a resource: write ``routes/<resource>.py`` exposing ``router`` (an ``APIRouter``
with its prefix and tag; auth via ``RequireOperator``/``RequireAdmin``, resources via
``Deps``, errors documented with ``ErrorResponse``), then add the module to ``ROUTERS``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from fastapi import Depends, FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway import errors
from services.gateway.auth import check_tokens
from services.gateway.deps import Resources
from services.gateway.errors import error_response
from services.gateway.federation import routes as federation
from services.gateway.feed import FeedHub
from services.gateway.headers import SecurityHeaders
from services.gateway.intake import IntakeChecks
from services.gateway.metrics import (
    ASGIApp,
    GatewayMetrics,
    Message,
    Receive,
    RequestMetrics,
    Scope,
    Send,
)
from services.gateway.routes import (
    agent_page,
    agents,
    audit,
    control,
    dashboard,
    events,
    health,
    metrics,
    quality,
    queue,
    session,
    spend,
    traces,
)
from services.gateway.settings import GatewaySettings
from services.gateway.traces import SpanCollector
from shared.bus import make_broker, make_valkey
from shared.federation.settings import FederationSettings
from shared.queue import ensure_stream
from shared.settings import BudgetSettings, NatsSettings, QualitySettings, ValkeySettings
from shared.spawners import SpawnerRegistry
from shared.store import StateStore
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)

ROUTERS: tuple[ModuleType, ...] = (
    health,
    session,
    agents,
    agent_page,
    traces,
    control,
    audit,
    queue,
    spend,
    quality,
    events,
    metrics,
    dashboard,
)
"""One module per resource, each exposing ``router``; included in this order."""

TAGS = [
    {"name": "health", "description": "Liveness; open to all."},
    {"name": "auth", "description": "Who the caller is."},
    {"name": "agents", "description": "Spawn, list, inspect and kill agents."},
    {"name": "killswitch", "description": "The kill-all hold and its release (admins)."},
    {"name": "audit", "description": "The audit trail: kills, kill-alls, resumes, YOLO skips."},
    {"name": "queue", "description": "Queue depth and task counts."},
    {"name": "spend", "description": "What agents cost per day and task type; the budget."},
    {"name": "quality", "description": "Run the quality gates on a worktree (coordinator API)."},
    {"name": "events", "description": "Live agent events (SSE; WebSocket at /events/ws)."},
    {"name": "metrics", "description": "Prometheus metrics."},
]

DESCRIPTION = """\
Queue, run, gate and kill Claude coding agents.

**Auth**: every path but `/health` (and the dashboard at `/`) needs
`Authorization: Bearer <token>`: `MOSAIC_API_TOKEN` grants the *operator* role,
`MOSAIC_ADMIN_TOKEN` the *admin* role (kill-all, resume). The live feed also accepts the
token as a `token` query parameter; the WebSocket `/events/ws` takes it in the
`Authorization` header, the `token` query parameter, or (browsers) the subprotocol
`mosaic.bearer.<base64url(token)>`, and is refused before it is accepted without one.

**Errors**: every 4xx and 5xx body is `{"error": {"code", "message", "field"?, "details"?}}`;
`field` names the offending input.
"""


class BodyLimit:
    """Refuse bodies over the limit (413), declared or streamed, before they are parsed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"body over {self.limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await error_response(413, "payload_too_large", too_large)(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise StarletteHTTPException(413, too_large)
            return message

        await self.app(scope, limited, send)


def _no_framework_telemetry() -> dict[str, Any]:
    """Turn off FastAPI's own OpenTelemetry (newer FastAPI has it, on by default).

    It would make every request a span (health probes, the live feed) and parent the
    task's root span (``spawn``, ``shared.tracing``) under the HTTP request's, which
    belongs to no task; the gateway's spans are its own. An older FastAPI gets nothing.
    """
    if "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    off = ("tracing", "metrics", "logs", "operation_spans", "auto_configure")
    return {"telemetry": dict.fromkeys(off, False)}


def create_app(
    settings: GatewaySettings | None = None,
    nats: NatsSettings | None = None,
    valkey: ValkeySettings | None = None,
    quality: QualitySettings | None = None,
    federation_settings: FederationSettings | None = None,
    budget: BudgetSettings | None = None,
) -> FastAPI:
    """Build the gateway; nothing connects until the lifespan starts.

    The ``/federation`` routes exist only with ``FEDERATION_ENABLED`` (else 404), and the
    API explorer (``/docs``, ``/redoc``) only with ``GATEWAY_DOCS``; ``/openapi.json``
    always. Raises ``GatewayConfigError`` when no token is configured.
    """
    settings = settings or GatewaySettings()
    nats = nats or NatsSettings()
    valkey = valkey or ValkeySettings()
    quality = quality or QualitySettings()
    federation_settings = federation_settings or FederationSettings()
    budget = budget or BudgetSettings()
    check_tokens(settings)
    gateway_metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker = make_broker(nats, "gateway")
        await broker.start()
        js = broker.connection.jetstream()
        await ensure_stream(js)
        redis = make_valkey(valkey)
        store = StateStore(redis, prefix=valkey.state_prefix)
        feed = FeedHub(
            broker.connection,
            store,
            gateway_metrics,
            queue_size=settings.feed_queue_size,
            reorder_wait=settings.feed_reorder_wait_s,
        )
        await feed.start()
        collector = SpanCollector(
            broker.connection,
            store,
            cap=settings.trace_max_spans,
            ttl_s=settings.trace_ttl_s,
        )
        await collector.start()
        app.state.loop = asyncio.get_running_loop()
        spawners = SpawnerRegistry(redis, valkey.state_prefix)
        app.state.resources = Resources(
            broker=broker,
            js=js,
            store=store,
            tracker=AgentTracker(store, broker, publish=feed.deliver),
            quality=quality,
            started=time.monotonic(),
            feed=feed,
            metrics=gateway_metrics,
            settings=settings,
            spawners=spawners,
            intake=IntakeChecks(spawners, broker, settings.gateway_precheck_timeout_s),
            kill_wait_s=settings.kill_wait_s,
            budget=budget,
        )
        if quality.yolo_mode:
            log.warning("YOLO_MODE is on: quality gates are disabled (the secret scan still runs)")
        try:
            yield
        finally:
            await collector.stop()
            await feed.stop()
            await broker.stop()
            await redis.aclose()

    app = FastAPI(
        title="Mosaic Orchestrator",
        version="0.1.0",
        summary="Queue, run, gate and kill Claude coding agents.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        dependencies=[Depends(errors.refuse_unknown_query)],
        docs_url="/docs" if settings.gateway_docs else None,
        redoc_url="/redoc" if settings.gateway_docs else None,
        **_no_framework_telemetry(),
    )
    app.state.settings = settings
    app.state.metrics = gateway_metrics
    app.state.federation_settings = federation_settings
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, docs=settings.gateway_docs)
    app.add_middleware(RequestMetrics, metrics=gateway_metrics)
    errors.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    if federation_settings.federation_enabled:
        app.include_router(federation.router)
    return app
