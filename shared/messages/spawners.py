"""What a spawner can run: its capability record, refreshed by its heartbeat."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict

from shared.messages.base import Message


class SpawnerReadiness(Message):
    """Whether one spawner can run agents, and with what: the part of its capability
    record that ``/health`` shows (``spawners``)."""

    model_config = ConfigDict(extra="ignore")  # a newer spawner's fields do not break a reader

    instance: str
    ready: bool
    problems: list[str] = []
    sandbox: str | None = None
    """The sandbox kind (``docker``, ``bwrap``, ``none``), None when none works."""
    unsafe: bool = False
    """True when agents run as bare host processes (``MOSAIC_SANDBOX=none``)."""
    environment: str | None = None
    """The default environment agents get ("image mosaic/sandbox:latest", "host tools (bwrap)")."""
    provider: str | None = None
    model: str | None = None
    slots: int = 0


class SpawnerCapability(SpawnerReadiness):
    """One spawner's readiness, sandbox and model, as the gateway and ``/health`` see it.

    A spawner that cannot run agents (no sandbox works, no model is set) still writes
    one, with ``ready`` false and ``problems`` saying what to install or set, so that
    spawn can answer 503 with that message instead of queueing work nobody will take.
    """

    started_at: datetime
    expires_at: datetime
    """When this record stops counting unless the heartbeat refreshes it."""
