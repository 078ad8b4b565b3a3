"""Gates settings, read from the environment (``GATES_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

RunnerKind = Literal["auto", "docker", "local"]


class GatesSettings(BaseSettings):
    """Where gate commands run, their bounds, and the thresholds gates apply."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    gates_sandbox: RunnerKind = Field(
        default="auto", validation_alias=AliasChoices("GATES_SANDBOX", "MOSAIC_SANDBOX")
    )
    """``docker`` (a hardened container per command), ``local`` or ``auto`` (docker if
    the daemon answers and the image exists)."""
    gates_image: str = Field(
        default="mosaic/sandbox:latest",
        validation_alias=AliasChoices("GATES_IMAGE", "MOSAIC_SANDBOX_IMAGE"),
    )
    gates_concurrency: int = Field(default=4, ge=1)
    """Checks one gates process runs at once."""
    gates_gate_timeout_s: float = Field(default=300.0, gt=0)
    """Default wall-time bound of one gate command (``timeout`` in gates.toml overrides)."""
    gates_check_budget_s: float = Field(default=840.0, gt=0)
    """Wall time of a whole check; stays under the spawner's wait for an answer."""
    gates_coverage_threshold: float = Field(default=85.0, ge=0, le=100)
    gates_review_threshold: float = Field(
        default=0.9,
        ge=0,
        le=1,
        validation_alias=AliasChoices("GATES_REVIEW_THRESHOLD", "gates_review_threshold"),
    )
    gates_review_timeout_s: float = Field(default=180.0, gt=0)
    gates_review_max_diff_chars: int = Field(default=150_000, gt=0)
    gates_excerpt_chars: int = Field(default=4000, ge=200)
    gates_max_output: int = Field(default=1_000_000, gt=0)
    """Bytes of a gate's output kept for parsing (the excerpt is trimmed from these)."""
    gates_tool_path: str = ""
    """Directories (``:``-separated) put before ``PATH`` for local gate commands."""
    gates_own_tools: bool = True
    """Also put this interpreter's ``bin`` directory on the local runner's ``PATH``, so
    the ruff, mypy, pytest and coverage installed with Mosaic are found."""
    gates_worktree_root: Path | None = None
    """Worktrees must lie under this directory; unset means ``MOSAIC_HOME``."""
    gates_memory_mb: int = Field(default=2048, gt=0)
    gates_cpus: float = Field(default=1.0, gt=0)
    gates_pids: int = Field(default=512, gt=0)
    gates_docker_timeout_s: float = Field(default=30.0, gt=0)
