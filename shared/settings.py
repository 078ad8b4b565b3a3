"""Settings read from the environment (pydantic-settings).

Each settings class is built where it is used (a service factory, a test fixture), never
at import time, so tests inject their own values. Names follow the original spec where
it has them: ``NATS_URL``, ``VALKEY_URL``, ``YOLO_MODE``, ``GATEWAY_PORT``.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.messages.gates import GateProfile

_CONFIG = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)


def default_home() -> Path:
    """The data directory used when ``MOSAIC_HOME`` is not set."""
    return Path.home() / ".mosaic"


class NatsSettings(BaseSettings):
    """Where the NATS server is and how long to wait for it."""

    model_config = _CONFIG

    nats_url: str = "nats://127.0.0.1:4222"
    nats_connect_timeout: int = 5


HOST_ID_ENV = "MOSAIC_HOST_ID"
HOST_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""A host id is one NATS subject token (no dot, no wildcard, no space): lowercase letters,
digits, ``_`` and ``-``, at most 63 characters."""


def sanitise_host_id(name: str) -> str:
    """A valid host id made from a machine name: its first label, lowercased, every other
    character ``-`` (``Build-01.example.org`` gives ``build-01``); ``host`` if nothing is left."""
    label = name.strip().split(".", 1)[0].lower()
    cleaned = re.sub(r"[^a-z0-9_-]", "-", label).strip("-_")[:63]
    return cleaned if cleaned and HOST_ID_PATTERN.match(cleaned) else "host"


def default_host_id() -> str:
    """The host id when ``MOSAIC_HOST_ID`` is not set: this machine's name, sanitised.

    Every service of one machine reads the same name, so one host alone needs no setting;
    containers each have a name of their own, so compose sets ``MOSAIC_HOST_ID``."""
    return sanitise_host_id(socket.gethostname())


class HostSettings(BaseSettings):
    """Which host this process serves (``MOSAIC_HOST_ID``): the spawner, gitops, gates and
    killswitch of one host share its workspace and answer its host-scoped subjects
    (``shared.subjects.gitops``, ``gates_check``). See docs/deploy.md, "Many hosts"."""

    model_config = _CONFIG

    mosaic_host_id: str = Field(default_factory=default_host_id)

    @field_validator("mosaic_host_id", mode="before")
    @classmethod
    def _valid_token(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return default_host_id()  # MOSAIC_HOST_ID= (empty) means unset
        if not isinstance(value, str) or not HOST_ID_PATTERN.match(value):
            raise ValueError(
                f"{HOST_ID_ENV} must be lowercase letters, digits, '_' or '-' (starting with "
                f"a letter or digit, at most 63): it is one NATS subject token; got {value!r}"
            )
        return value


def host_id() -> str:
    """This process's host id (``MOSAIC_HOST_ID`` or the machine's name, sanitised)."""
    return HostSettings().mosaic_host_id


class ValkeySettings(BaseSettings):
    """Where the Valkey server is, and its password when it has one, inside the URL
    (``redis://:<password>@host:6379/0``): the one way a client gets it. ``mosaic up``
    and compose always set one; a server without a password (test fixtures) works too."""

    model_config = _CONFIG

    valkey_url: str = "redis://127.0.0.1:6379/0"
    state_prefix: str = "mosaic"
    """Every key of this system starts with ``<state_prefix>:`` (``STATE_PREFIX``): the
    same in every service, so it is read here once."""
    valkey_sentinels: str | None = None
    """``host:port,host:port``: find the primary through these sentinels (Valkey with a
    replica and failover). The password and db still come from ``VALKEY_URL`` (whose
    host is then unused); the sentinels take the same password."""
    valkey_sentinel_master: str = "mosaic"
    """The name the sentinels know the primary by."""
    valkey_max_connections: int = Field(default=64, ge=1)
    """Connections a service opens to Valkey at most (``VALKEY_MAX_CONNECTIONS``); more
    commands at once wait for a free one (up to ``VALKEY_POOL_TIMEOUT_S``). A burst (a
    kill-all ending a hundred agents) then reuses open connections instead of opening
    one per command: a new connection costs a TCP handshake and two commands of set-up,
    an order of magnitude more than the command it was opened for."""
    valkey_pool_timeout_s: float = Field(default=10.0, gt=0)
    """How long a command waits for a free connection before failing (retryably)."""

    @field_validator("valkey_sentinels", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``VALKEY_SENTINELS`` as (host, port) pairs; a bad entry raises ``ValueError``
        naming the setting."""
        pairs: list[tuple[str, int]] = []
        for entry in (self.valkey_sentinels or "").split(","):
            host, _, port = entry.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"VALKEY_SENTINELS: {entry.strip()!r} is not host:port")
            pairs.append((host.strip("[]"), int(port)))
        return pairs


class HomeSettings(BaseSettings):
    """The data directory: repo cache, worktrees, embedded server data, credentials."""

    model_config = _CONFIG

    mosaic_home: Path = Field(default_factory=default_home)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")

    @property
    def repos_dir(self) -> Path:
        """gitops's repository cache (bare clones, agent repositories beside them)."""
        return self.mosaic_home / "repos"


class QualitySettings(BaseSettings):
    """Quality-gate policy shared by the gateway, spawner and gates service."""

    model_config = _CONFIG

    yolo_mode: bool = False
    default_gate_profile: GateProfile = "standard"


class GitSettings(BaseSettings):
    """The identity gitops commits with."""

    model_config = _CONFIG

    git_author_name: str = "Mosaic Agent"
    git_author_email: str = "agent@mosaic.invalid"


NO_MODEL = (
    "no model: set ANTHROPIC_API_KEY (or CLAUDE_API_KEY) for the anthropic provider, "
    "or MOSAIC_PROVIDER=scripted to run scripted plans (no model)"
)
"""Why no agent can start without a model setting; the spawner and gateway say it as is."""


class ModelSettings(BaseSettings):
    """How agents reach a model. The key is a secret: it never leaves the spawner.

    There is no default provider: a system with no key and no ``MOSAIC_PROVIDER`` runs
    no agent, rather than silently running scripted plans and pushing their notes.
    """

    model_config = _CONFIG

    mosaic_provider: str | None = Field(default=None, pattern="^(anthropic|scripted)$")
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "CLAUDE_API_KEY")
    )
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_max_tokens: int = 4096

    @field_validator("mosaic_provider", "anthropic_api_key", "anthropic_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``MOSAIC_PROVIDER=`` (empty) means unset, as it does for a shell."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def provider(self) -> str | None:
        """The provider in force: ``MOSAIC_PROVIDER`` when set, else ``anthropic`` when a
        key is set, else None (no agent can run: see ``NO_MODEL``). Never ``scripted``
        unless asked for by name."""
        if self.mosaic_provider:
            return self.mosaic_provider
        return "anthropic" if self.anthropic_api_key else None

    def problem(self) -> str | None:
        """Why no agent can reach a model with these settings, or None when one can."""
        provider = self.provider()
        if provider is None:
            return NO_MODEL
        if provider == "anthropic" and self.anthropic_api_key is None:
            return (
                "no model: MOSAIC_PROVIDER=anthropic but neither ANTHROPIC_API_KEY nor "
                "CLAUDE_API_KEY is set"
            )
        return None

    def model_name(self) -> str | None:
        """The model agents talk to, for records and ``/health``: the Anthropic model
        name, ``scripted`` for scripted plans, None when no provider is set."""
        provider = self.provider()
        if provider == "anthropic":
            return self.anthropic_model
        return provider


class BudgetSettings(BaseSettings):
    """The deployment's spending limit (docs/operations.md, "Budgets").

    ``MOSAIC_BUDGET_USD_PER_DAY``: the most all agents (their reviewers included) may
    spend in one UTC day; unset, no daily limit. Once reached, intake holds until an
    admin's ``POST /agents/resume`` or the next UTC day. ``MOSAIC_BUDGET_ON_EXHAUSTED``:
    what running agents do then: ``finish`` their task, or ``stop`` at their next model
    call (ending ``failed`` with reason ``budget``, their work salvaged).
    """

    model_config = _CONFIG

    mosaic_budget_usd_per_day: float | None = Field(default=None, gt=0)
    mosaic_budget_on_exhausted: str = Field(default="finish", pattern="^(finish|stop)$")

    @field_validator("mosaic_budget_usd_per_day", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
