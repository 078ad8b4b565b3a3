"""Gateway settings: where it listens, who may call it, and the live feed's bounds."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """HTTP listener, bearer tokens (operators and admins) and feed limits."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 3001
    mosaic_api_token: SecretStr | None = None
    mosaic_admin_token: SecretStr | None = None
    kill_wait_s: float = 5.0
    max_body_bytes: int = 1_000_000
    feed_queue_size: int = Field(default=1000, ge=1, le=100_000)
    """Events buffered per feed client; a client that falls this far behind is dropped."""
    feed_heartbeat_s: float = Field(default=15.0, gt=0)
    """How often an idle SSE stream gets a comment line (keeps proxies from closing it)."""
    feed_reorder_wait_s: float = Field(default=1.0, gt=0)
    """How long the feed holds a later event while an earlier one of the same agent is late."""
    ws_max_connections: int = Field(default=100, ge=1, le=100_000)
    """Live-feed WebSockets open at once (per gateway process); more are refused."""
    trace_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    """How long a task's spans are kept after the last one arrived."""
    trace_max_spans: int = Field(default=5000, ge=10, le=1_000_000)
    """Spans kept per trace (the newest); a runaway agent cannot fill Valkey."""
    gateway_docs: bool = False
    """Serve the API explorer (``/docs``, ``/redoc``; its assets come from a CDN)."""
    gateway_precheck_timeout_s: float = Field(default=20.0, gt=0, le=600)
    """How long ``POST /agents/check`` waits for gitops (a first check of a repository
    clones it into the cache)."""
