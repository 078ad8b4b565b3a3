"""``python -m services.gateway``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import uvicorn

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from shared.logs import configure_logging
from shared.settings import HomeSettings


def main() -> None:
    """Run until SIGTERM/SIGINT (uvicorn drains in-flight requests)."""
    home = HomeSettings()
    configure_logging("gateway", home.log_level, home.log_format)
    settings = GatewaySettings()
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
