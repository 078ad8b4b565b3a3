"""Kill latency, measured where kills happen (spawner and killswitch), for Prometheus.

``mosaic_kill_latency_seconds`` runs from the moment a process received the kill order
to the moment the agent's sandbox is gone and its state is ``killed``. Labels:
``service`` (who measured), ``by`` (who ended the agent: ``spawner`` when its own
spawner did, ``killswitch`` when the killswitch had to), ``scope`` (``agent`` or ``all``).
Serve it with ``serve_metrics`` on the port in ``MOSAIC_METRICS_PORT`` (off when unset).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

KILL_LATENCY = Histogram(
    "mosaic_kill_latency_seconds",
    "From kill order received to sandbox gone and state killed",
    ["service", "by", "scope"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
KILLS = Counter(
    "mosaic_kills_total", "Agents killed, by who ended them", ["service", "by", "scope"]
)


class MetricsSettings(BaseSettings):
    """Where a service process serves ``/metrics`` (``MOSAIC_METRICS_PORT``; unset = off)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    mosaic_metrics_port: int | None = None
    mosaic_metrics_host: str = "127.0.0.1"


def serve_metrics(settings: MetricsSettings | None = None) -> int | None:
    """Serve this process's Prometheus metrics if a port is set; returns the port."""
    settings = settings or MetricsSettings()
    if not settings.mosaic_metrics_port:
        return None
    try:
        start_http_server(settings.mosaic_metrics_port, addr=settings.mosaic_metrics_host)
    except OSError:
        log.warning("cannot serve metrics on port %d", settings.mosaic_metrics_port, exc_info=True)
        return None
    return settings.mosaic_metrics_port
