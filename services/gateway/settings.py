"""Gateway settings: where it listens and who may call it."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """HTTP listener and bearer tokens (operators and admins)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 3001
    mosaic_api_token: SecretStr | None = None
    mosaic_admin_token: SecretStr | None = None
    kill_wait_seconds: float = 5.0
    max_body_bytes: int = 1_000_000
    state_prefix: str = "mosaic"
