"""The gates service's factory: answers ``mosaic.gates.check`` in the ``gates`` queue group."""

from __future__ import annotations

from faststream import FastStream

from services.gates.handlers import register
from shared.bus import make_broker
from shared.service import add_health
from shared.settings import NatsSettings


def create_app(nats: NatsSettings | None = None) -> FastStream:
    """Build the gates service; nothing connects until it runs."""
    broker = make_broker(nats or NatsSettings(), "gates")
    add_health(broker, "gates")
    register(broker)
    return FastStream(broker)
