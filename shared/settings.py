"""Settings read from the environment (pydantic-settings).

Each settings class is built where it is used (a service factory, a test fixture), never
at import time, so tests inject their own values. Names follow the original spec where
it has them: ``NATS_URL``, ``VALKEY_URL``, ``YOLO_MODE``, ``GATEWAY_PORT``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_CONFIG = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)


def default_home() -> Path:
    """The data directory used when ``MOSAIC_HOME`` is not set."""
    return Path.home() / ".mosaic"


class NatsSettings(BaseSettings):
    """Where the NATS server is and how long to wait for it."""

    model_config = _CONFIG

    nats_url: str = "nats://127.0.0.1:4222"
    nats_connect_timeout: int = 5


class ValkeySettings(BaseSettings):
    """Where the Valkey server is."""

    model_config = _CONFIG

    valkey_url: str = "redis://127.0.0.1:6379/0"


class HomeSettings(BaseSettings):
    """The data directory: repo cache, worktrees, embedded server data, credentials."""

    model_config = _CONFIG

    mosaic_home: Path = Field(default_factory=default_home)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")


class QualitySettings(BaseSettings):
    """Quality-gate policy shared by the gateway, spawner and gates service."""

    model_config = _CONFIG

    yolo_mode: bool = False
    default_gate_profile: str = Field(default="standard", pattern="^(strict|standard|minimal)$")


class GitSettings(BaseSettings):
    """The identity gitops commits with."""

    model_config = _CONFIG

    git_author_name: str = "Mosaic Agent"
    git_author_email: str = "agent@mosaic.invalid"


class ModelSettings(BaseSettings):
    """How agents reach a model. The key is a secret: it never leaves the spawner."""

    model_config = _CONFIG

    mosaic_provider: str | None = Field(default=None, pattern="^(anthropic|scripted)$")
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "CLAUDE_API_KEY")
    )
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_max_tokens: int = 4096

    def provider(self) -> str:
        """The provider in force: explicit setting, else ``anthropic`` when a key is set."""
        if self.mosaic_provider:
            return self.mosaic_provider
        return "anthropic" if self.anthropic_api_key else "scripted"
