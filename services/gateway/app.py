"""The gateway's factory: FastAPI app whose lifespan opens NATS, JetStream and Valkey."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from services.gateway import errors
from services.gateway.deps import Resources
from services.gateway.errors import error_response
from services.gateway.routes import agents, control, health, queue
from services.gateway.settings import GatewaySettings
from shared.bus import make_broker, make_valkey
from shared.queue import ensure_stream
from shared.settings import NatsSettings, QualitySettings, ValkeySettings
from shared.store import StateStore
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


class BodyLimit(BaseHTTPMiddleware):
    """Refuse bodies over the limit before parsing them (413)."""

    def __init__(self, app: object, limit: int) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.limit = limit

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return error_response(413, "payload_too_large", f"body over {self.limit} bytes")
        return await call_next(request)


def create_app(
    settings: GatewaySettings | None = None,
    nats: NatsSettings | None = None,
    valkey: ValkeySettings | None = None,
    quality: QualitySettings | None = None,
) -> FastAPI:
    """Build the gateway; nothing connects until the lifespan starts."""
    settings = settings or GatewaySettings()
    nats = nats or NatsSettings()
    valkey = valkey or ValkeySettings()
    quality = quality or QualitySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker = make_broker(nats, "gateway")
        await broker.start()
        js = broker.connection.jetstream()
        await ensure_stream(js)
        redis = make_valkey(valkey)
        store = StateStore(redis, prefix=settings.state_prefix)
        app.state.resources = Resources(
            broker=broker,
            js=js,
            store=store,
            tracker=AgentTracker(store, broker),
            quality=quality,
            started=time.monotonic(),
            kill_wait_seconds=settings.kill_wait_seconds,
        )
        if quality.yolo_mode:
            log.warning("YOLO_MODE is on: quality gates are disabled (the secret scan still runs)")
        try:
            yield
        finally:
            await broker.stop()
            await redis.aclose()

    app = FastAPI(
        title="Mosaic Orchestrator",
        version="0.1.0",
        summary="Queue, run, gate and kill Claude coding agents.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(agents.router)
    app.include_router(queue.router)
    app.include_router(control.router)
    return app
