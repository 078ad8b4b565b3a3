"""Quality-gate request/reply contracts."""

from __future__ import annotations

from typing import Literal

from shared.messages.base import Failure, Message

GatePhase = Literal["pre-commit", "pre-push"]
GateStatus = Literal["passed", "failed", "skipped"]


class GateCheckRequested(Message):
    """Check an agent's worktree against a gate profile."""

    agent_id: str
    task_id: str
    worktree: str
    phase: GatePhase = "pre-commit"
    profile: Literal["strict", "standard", "minimal"] = "standard"
    yolo: bool = False


class GateResult(Message):
    """One gate's verdict; ``figure`` carries a measured value such as coverage."""

    name: str
    status: GateStatus
    duration_ms: int = 0
    excerpt: str = ""
    figure: float | None = None


class GateDecision(Message):
    """Approved only when every required gate passed."""

    approved: bool
    results: tuple[GateResult, ...] = ()
    yolo: bool = False
    error: Failure | None = None
