"""Killswitch settings."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class KillswitchSettings(BaseSettings):
    """Read from the environment."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    state_prefix: str = "mosaic"
