"""Federation settings (environment variables, built where used)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FederationSettings(BaseSettings):
    """Clock window, peer timeouts and defaults for newly registered peers."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    mosaic_instance_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")
    """The id given to this instance when its identity is first created (else random)."""
    federation_public_url: str | None = None
    """The gateway URL peers should call (default ``http://<GATEWAY_HOST>:<GATEWAY_PORT>``)."""
    federation_window_seconds: float = Field(default=60.0, gt=0, le=3600)
    """A command whose timestamp is further than this from now is refused."""
    federation_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """Bound on one HTTP exchange with a peer."""
    federation_attempts: int = Field(default=3, ge=1, le=10)
    """Tries per command (the same signed message each time, so retries are safe)."""
    federation_default_max_agents: int = Field(default=5, ge=0, le=10_000)
    """Concurrent agents a newly registered peer may run here, unless given."""

    @property
    def replay_ttl_seconds(self) -> int:
        """How long seen message ids and stored answers are kept (at least 2 windows)."""
        return max(int(self.federation_window_seconds * 2) + 1, 120)
