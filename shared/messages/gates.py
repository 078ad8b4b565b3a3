"""Quality-gate request/reply contracts."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from shared.messages.base import Failure, Message
from shared.messages.spend import TokenUsage

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

GatePhase = Literal["pre-commit", "pre-push"]
GateProfile = Literal["strict", "standard", "minimal"]
"""The gate profiles (which gates each runs: ``services/gates/profiles.py``)."""
GateStatus = Literal["passed", "failed", "skipped"]


class GateCheckRequested(Message):
    """Check an agent's worktree against a gate profile.

    ``base`` (a commit or ref the worktree branched from) and ``work_items`` are
    optional: without ``base`` the gates service finds the merge base with the remote's
    default branch; ``work_items`` give the AI reviewer the task's intent.

    ``environment_image`` and ``environment_env`` are the environment the agent ran in
    (the spawner fills them), so the gates run where the agent ran: the image of its
    docker sandbox (``None``: the sandbox backend's default) and the repository's
    declared, non-secret environment variables.
    """

    agent_id: str
    task_id: str
    worktree: str
    phase: GatePhase = "pre-commit"
    profile: GateProfile = "standard"
    yolo: bool = False
    base: str | None = None
    work_items: tuple[str, ...] = ()
    environment_image: str | None = Field(default=None, min_length=1, max_length=512)
    environment_env: dict[str, str] = {}

    @field_validator("environment_env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not _ENV_NAME.match(name)]
        if bad:
            raise ValueError(f"not environment variable names: {', '.join(sorted(bad))[:200]}")
        return value


class GateResult(Message):
    """One gate's verdict; ``figure`` carries a measured value such as coverage.

    ``excerpt`` is a trimmed piece of the gate's output, or why it did not run: a gate
    that could not run is ``failed`` with ``not checked: <why>``; only a gate turned off
    in the repository's ``.mosaic/gates.toml`` (or by YOLO mode) is ``skipped``.
    ``command`` is what ran, when something ran. ``usage`` is what a model call of the
    gate (the AI review) reported: the spawner charges it to the agent's spend.
    """

    name: str
    status: GateStatus
    duration_ms: int = 0
    excerpt: str = ""
    figure: float | None = None
    command: str | None = None
    usage: TokenUsage | None = None


class GateDecision(Message):
    """Approved only when no gate failed and at least one gate ran and passed.

    Skipped gates (turned off explicitly) do not block; a check where nothing would
    run is an ``error``, never an approval. ``summary`` says in one line what happened.
    """

    approved: bool = False
    """False unless the gates approved: also what a refused or unreadable request gets."""
    results: tuple[GateResult, ...] = ()
    yolo: bool = False
    error: Failure | None = None
    summary: str = ""
