"""Quality-gate request/reply contracts."""

from __future__ import annotations

from typing import Literal

from shared.messages.base import Failure, Message

GatePhase = Literal["pre-commit", "pre-push"]
GateStatus = Literal["passed", "failed", "skipped"]


class GateCheckRequested(Message):
    """Check an agent's worktree against a gate profile.

    ``base`` (a commit or ref the worktree branched from) and ``work_items`` are
    optional: without ``base`` the gates service finds the merge base with the remote's
    default branch; ``work_items`` give the AI reviewer the task's intent.
    ``environment_image`` is the image the agent's sandbox ran from (the repository's
    declared environment; None: the sandbox image) and ``environment_env`` its declared
    non-secret environment: the gates run there too.
    """

    agent_id: str
    task_id: str
    worktree: str
    phase: GatePhase = "pre-commit"
    profile: Literal["strict", "standard", "minimal"] = "standard"
    yolo: bool = False
    base: str | None = None
    work_items: tuple[str, ...] = ()
    environment_image: str | None = None
    environment_env: dict[str, str] = {}


class GateResult(Message):
    """One gate's verdict; ``figure`` carries a measured value such as coverage.

    ``excerpt`` is a trimmed piece of the gate's output (or, when skipped, the reason);
    ``command`` is what ran, when something ran.
    """

    name: str
    status: GateStatus
    duration_ms: int = 0
    excerpt: str = ""
    figure: float | None = None
    command: str | None = None


class GateDecision(Message):
    """Approved only when every required gate passed (skipped gates do not block).

    ``summary`` says in one line what happened, and says loudly when nothing was
    checked at all (every gate of the profile skipped).
    """

    approved: bool
    results: tuple[GateResult, ...] = ()
    yolo: bool = False
    error: Failure | None = None
    summary: str = ""
