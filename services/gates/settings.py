"""Gates settings, read from the environment (``GATES_*``).

Where gate commands run is not a gates setting: they run in the sandbox the spawner
uses (``MOSAIC_SANDBOX``, ``MOSAIC_SANDBOX_IMAGE``; ``shared.sandbox.settings``), in the
environment the agent ran in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_GONE = {
    "gates_sandbox": "GATES_SANDBOX",
    "gates_image": "GATES_IMAGE",
}
"""Settings that no longer exist; set, they stop the service instead of being ignored."""


class GatesSettings(BaseSettings):
    """The bounds of gate commands and the thresholds gates apply."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    gates_sandbox: str | None = None
    """Gone (gates run in ``MOSAIC_SANDBOX``'s sandbox); refused when set."""
    gates_image: str | None = None
    """Gone (the environment image comes with each request); refused when set."""
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
    """Host directories (``:``-separated) put before ``PATH`` in ``none`` and ``bwrap``
    sandboxes (docker's image is its own environment)."""
    gates_own_tools: bool = True
    """With ``MOSAIC_SANDBOX=none``, also put this interpreter's ``bin`` directory on
    ``PATH``, so the ruff, mypy, pytest and coverage installed with Mosaic are found."""
    gates_worktree_root: Path | None = None
    """Worktrees must lie under this directory; unset means ``MOSAIC_HOME``."""
    gates_memory_mb: int = Field(default=2048, gt=0)
    gates_cpus: float = Field(default=1.0, gt=0)
    gates_pids: int = Field(default=512, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _refuse_gone(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for field, name in _GONE.items():
                if data.get(field) is not None or data.get(name) is not None:
                    raise ValueError(
                        f"{name} no longer exists: gate commands run in the sandbox the "
                        "spawner uses (MOSAIC_SANDBOX, MOSAIC_SANDBOX_IMAGE), in the "
                        "environment the agent ran in; unset it"
                    )
        return data
