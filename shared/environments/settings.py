"""Environment build settings, read from the environment (``MOSAIC_ENV_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""Debian's bundle (package ``ca-certificates``): holds a TLS-intercepting proxy's CA
when the operator installed it on the host."""


def _default_ca_bundle() -> str:
    return str(HOST_CA_BUNDLE) if HOST_CA_BUNDLE.is_file() else ""


class EnvironmentSettings(BaseSettings):
    """How environment images are built, shared between builders, and pruned."""

    model_config = SettingsConfigDict(env_prefix="MOSAIC_ENV_", extra="ignore")

    build_timeout_s: float = Field(default=1800.0, gt=0)
    """A build running longer is stopped and the task fails (not retried)."""
    ca_bundle: str = Field(default_factory=_default_ca_bundle)
    """A PEM bundle copied into builds and named by ``SSL_CERT_FILE``, ``PIP_CERT``,
    ``NODE_EXTRA_CA_CERTS``, ``REQUESTS_CA_BUNDLE`` for the setup steps; empty: none.
    Default: the host's bundle when it exists."""
    lock_ttl_s: float = Field(default=30.0, gt=0)
    """Life of the build lock in Valkey; the builder refreshes it every third of it, so a
    builder that died frees the key within this time."""
    wait_poll_s: float = Field(default=1.0, gt=0)
    """How often an agent waiting for another builder looks for the image."""
    failure_ttl_s: float = Field(default=300.0, ge=0)
    """How long a failed build's error answers every agent asking for the same key,
    instead of each of them building it again (a changed declaration is a new key)."""
    keep_per_repository: int = Field(default=3, ge=1)
    """Pruning keeps this many most recently used environment images of each repository."""
    prune_unused_days: float = Field(default=14.0, ge=0)
    """Pruning removes images beyond ``keep_per_repository`` and any image unused this long."""
    output_lines: int = Field(default=30, gt=0)
    """How many of a failed build's last lines the task's error carries."""
