"""Federation settings (environment variables, built where used)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FederationSettings(BaseSettings):
    """Whether federation is on, clock window, peer timeouts, and the caps every peer's
    spawn here is held to (on top of each peer's own ``limits``)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    federation_enabled: bool = False
    """``FEDERATION_ENABLED=1`` turns federation on; off, every ``/federation`` path is 404."""
    mosaic_instance_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")
    """The id given to this instance when its identity is first created (else random)."""
    federation_public_url: str | None = None
    """The gateway URL peers should call (default ``http://<GATEWAY_HOST>:<GATEWAY_PORT>``)."""
    federation_window_s: float = Field(default=60.0, gt=0, le=3600)
    """A command whose timestamp is further than this from now is refused."""
    federation_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Bound on one HTTP exchange with a peer."""
    federation_attempts: int = Field(default=3, ge=1, le=10)
    """Tries per command (the same signed message each time, so retries are safe)."""
    federation_default_max_agents: int = Field(default=5, ge=0, le=10_000)
    """Concurrent agents a newly registered peer may run here, unless given."""

    federation_priority_floor: int = Field(default=5, ge=1, le=10)
    """The highest priority a peer may ask for (1 is the highest): a lower number is refused."""
    federation_max_timeout_s: int = Field(default=3600, ge=1, le=86_400)
    """The longest agent timeout a peer may ask for."""
    federation_allow_network: bool = False
    """Whether a peer's agent may have network access."""
    federation_unverified_burst: int = Field(default=10, ge=1, le=10_000)
    """Unverifiable requests one source may send to ``/federation`` before 429s."""
    federation_unverified_per_second: float = Field(default=0.2, gt=0, le=1000)
    """How fast that allowance refills."""

    @property
    def replay_ttl_s(self) -> int:
        """How long seen message ids and stored answers are kept (at least 2 windows)."""
        return max(int(self.federation_window_s * 2) + 1, 120)
