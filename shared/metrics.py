"""Prometheus metrics for services that have no HTTP server of their own.

Each service defines its metrics with ``prometheus_client`` (on the default registry, or
its own) and calls ``start_metrics_server`` once at start; ``METRICS_PORT=0`` (the
default) turns the endpoint off. The gateway serves its metrics at ``GET /metrics``
instead.
"""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


class MetricsSettings(BaseSettings):
    """Where a service exposes ``/metrics`` (plain HTTP, no auth: bind it privately)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    metrics_port: int = Field(default=0, ge=0, le=65535)
    """0 turns the endpoint off."""
    metrics_host: str = "127.0.0.1"


def start_metrics_server(
    settings: MetricsSettings | None = None, registry: CollectorRegistry = REGISTRY
) -> int | None:
    """Serve ``registry`` on ``METRICS_HOST:METRICS_PORT`` in a daemon thread.

    Returns the port, or None when ``METRICS_PORT`` is 0.
    """
    settings = settings or MetricsSettings()
    if settings.metrics_port == 0:
        return None
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return settings.metrics_port
