"""What every service process shares: logging, health probes, running a FastStream app."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

from faststream import FastStream
from faststream.nats import NatsBroker

from shared import subjects, tracing
from shared.logs import configure_logging
from shared.settings import HomeSettings, host_id

log = logging.getLogger(__name__)


def instance_name(service: str) -> str:
    """A name unique to this process, for logs, container labels and ownership."""
    return f"{service}-{socket.gethostname()}-{os.getpid()}"


def add_health(broker: NatsBroker, service: str) -> None:
    """Answer ``mosaic.health.<service>`` and ``mosaic.health.<service>.<host>`` (this
    process's ``MOSAIC_HOST_ID``) so ``mosaic up`` and tests can probe liveness."""
    started = time.monotonic()
    name = instance_name(service)
    host = host_id()

    async def health() -> dict[str, object]:
        return {
            "service": service,
            "instance": name,
            "host": host,
            "status": "ok",
            "uptime": round(time.monotonic() - started, 3),
        }

    broker.subscriber(subjects.health(service))(health)
    broker.subscriber(subjects.health_on(service, host))(health)


def run(service: str, create_app: Callable[[], FastStream]) -> None:
    """Entry point of ``python -m services.<service>``: configure logs and tracing, run
    until SIGTERM."""
    home = HomeSettings()
    configure_logging(service, home.log_level, home.log_format)
    tracing.setup(service)
    app = create_app()
    log.info("starting %s", service)
    asyncio.run(app.run())
