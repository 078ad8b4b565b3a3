"""Agent records and the events an agent's life emits."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from shared.messages.base import Message, utcnow
from shared.messages.gates import GateProfile
from shared.messages.spend import Spend


class AgentState(StrEnum):
    """Agent lifecycle: ``spawning → running → completed | failed | killed``."""

    SPAWNING = "spawning"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"


class TaskState(StrEnum):
    """Task lifecycle: ``pending → assigned → executing → completed | failed``."""

    PENDING = "pending"
    ASSIGNED = "assigned"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"


EventKind = Literal["state", "task_state", "progress", "cleanup", "gate", "warning", "overlap"]


class AgentEvent(Message):
    """One thing that happened to an agent, published on ``mosaic.events.agent.<id>``.

    ``seq`` orders an agent's events; it comes from the same atomic step that changed
    the state, so consumers can detect gaps.
    """

    agent_id: str
    task_id: str
    kind: EventKind
    seq: int = 0
    state: str | None = None
    previous: str | None = None
    at: datetime = Field(default_factory=utcnow)
    detail: dict[str, Any] = {}
    trace_id: str | None = None
    """The trace (OpenTelemetry, 32 hex digits) the event was recorded in, when traced."""


class AgentOverlap(Message):
    """Another agent's pushed branch changes files this agent is changing (the conflict
    forecast): who, which push, which of this agent's files (with the lines when known)."""

    agent_id: str
    branch: str
    commit: str
    files: tuple[str, ...]
    """Each overlapping file as the agent was told it: ``calc.py lines 10-14``."""
    at: datetime = Field(default_factory=utcnow)


class AgentHead(Message):
    """What an agent is, fixed when it is created: its ids, task, repository, priority."""

    agent_id: str
    task_id: str
    agent_type: str
    state: AgentState
    task_state: TaskState
    repository: str
    branch: str
    priority: int
    gate_profile: GateProfile
    created_at: datetime


class AgentProgress(Message):
    """The fields of an agent's record written as it runs, outside a state change too
    (progress, paths, the worktree's retirement): what an ``AgentPatch`` may carry."""

    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    agent_branch: str | None = None
    pushed_branch: str | None = None
    pushed_commit: str | None = None
    worktree: str | None = None
    salvage_branch: str | None = None
    sandbox: str | None = None
    """The sandbox kind the attempt runs in: ``docker``, ``bwrap`` or ``none``."""
    unsafe: bool = False
    """True when the agent runs as bare host processes (``MOSAIC_SANDBOX=none``)."""
    environment: str | None = None
    """What its commands run on: "image mosaic/sandbox:latest", "host tools (bwrap)"…"""
    provider: str | None = None
    """The model provider: ``anthropic`` or ``scripted``."""
    model: str | None = None
    """The model name (``scripted`` for scripted plans)."""
    spawner: str | None = None
    host: str | None = None
    """The host whose spawner took the task (``MOSAIC_HOST_ID``): its worktree, sandbox and
    gate runs are there, and its gitops and gates questions are asked of that host."""
    turns: int = 0
    tokens_used: int = 0
    stop_reason: str | None = None
    """Why it was stopped from outside its work, when it was: ``budget`` (its task's
    budget or the deployment's daily one was reached)."""
    last_tool: str | None = None
    quality_gates_disabled: bool = False
    gates: list[dict[str, Any]] = []
    merge_queue_position: int | None = None
    """With ``options.merge = "queue"``: 1 while its change is being integrated, n while
    n - 1 merges are ahead of it; ``None`` when not in the queue."""
    merged_range: str | None = None
    """``<old base>..<new base>``: the commits its queued merge added to the base branch."""
    overlaps: tuple[AgentOverlap, ...] = ()
    """Pushed branches of other agents that overlap this agent's changes, newest last."""


class AgentRecord(AgentProgress, AgentHead):
    """The agent as stored in Valkey and shown by ``GET /agents/{agentId}/status``: its
    head, its progress, and what only the store's atomic scripts change (attempts, spend)."""

    attempts: int = 0
    """The current attempt's number: the fencing token every write of an attempt carries."""
    attempt_reasons: list[str] = []
    """How each attempt that did not complete ended ("attempt 1: timeout after 8s"), in
    order: kept when the task is retried, handed back or runs out of deliveries."""
    spend: Spend = Spend()
    """What its model calls cost so far: every attempt, the AI reviewer's included."""


class AgentPatch(AgentProgress):
    """An update of an agent's record: ``StateStore.update`` writes only the fields
    given, so ``AgentPatch(worktree=None)`` clears the worktree and leaves the rest alone.
    Identity, states, attempts and spend are not here: they change only through the
    store's atomic scripts (``transition``, ``charge``)."""

    def written(self) -> dict[str, Any]:
        """The fields given, by their record names (what an update writes)."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}
