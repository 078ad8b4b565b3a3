"""``python -m services.gateway``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import logging
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI

from services.gateway.app import create_app
from services.gateway.auth import GatewayConfigError
from services.gateway.settings import GatewaySettings
from shared import tracing
from shared.logs import configure_logging
from shared.settings import HomeSettings

log = logging.getLogger("services.gateway")

KEEP_ALIVE_S = 75
"""How long an idle client connection is kept open. uvicorn's default (5 s) equals the
idle expiry of common client pools (httpx's is 5 s), so a client could send a request
on a connection the server was closing that same moment: under load about 1 spawn in
1000 was answered with a reset connection. Longer than the clients' expiry, the client
closes first."""


def main() -> int:
    """Run until SIGTERM/SIGINT (uvicorn drains in-flight requests)."""
    home = HomeSettings()
    configure_logging("gateway", home.log_level, home.log_format)
    tracing.setup("gateway")
    settings = GatewaySettings()
    try:
        app = create_app(settings)
    except GatewayConfigError as exc:
        log.error("gateway not started: %s", exc)
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    _Server(server_config(app, settings), app).run()
    return 0


def server_config(app: FastAPI, settings: GatewaySettings) -> uvicorn.Config:
    """How uvicorn serves the gateway: our logging, no access log, ``KEEP_ALIVE_S``."""
    return uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=10,
    )


class _Server(uvicorn.Server):
    """Ends live-feed streams on SIGTERM so the graceful drain does not wait on them."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        loop = getattr(self._app.state, "loop", None)
        resources = getattr(self._app.state, "resources", None)
        if loop is not None and resources is not None:
            loop.call_soon_threadsafe(resources.feed.close_clients)
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
