"""Killswitch settings (``KILL_GRACE_S``, ``REAP_INTERVAL_S`` …)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KillswitchSettings(BaseSettings):
    """Read from the environment."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kill_grace_s: float = Field(default=1.0, ge=0)
    """How long the owning spawner gets to end an agent before the killswitch does."""
    kill_poll_s: float = Field(default=0.025, gt=0)
    """How often the state is read while waiting for the spawner."""
    kill_concurrency: int = Field(default=16, ge=1)
    """Agents the killswitch ends at once itself during a kill-all."""
    gitops_timeout_s: float = Field(default=60.0, gt=0)
    """How long a worktree removal may take."""
    docker_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of one Docker API call."""
    killswitch_docker: bool = True
    """Look for sandbox containers (off: the daemon is never contacted)."""
    reap_interval_s: float = Field(default=30.0, gt=0)
    """How often the reaper looks for leftovers of final agents."""
    reap_min_age_s: float = Field(default=30.0, ge=0)
    """A final agent's worktree is left to its spawner's own cleanup for this long."""
