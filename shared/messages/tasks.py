"""Task submission: the HTTP request body and the message queued on JetStream."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from shared.ids import ID_PATTERN, check_id
from shared.messages.base import Message, utcnow
from shared.messages.gates import GateProfile
from shared.messages.spend import TaskBudget
from shared.repository import check_repository

AgentType = Literal["worker", "reviewer", "tester"]
MergeMode = Literal["none", "queue"]
"""``none``: push the agent's branch only. ``queue``: integrate it into the base branch
through the repository's merge queue (docs/git.md, "Merge queue")."""

TaskId = Annotated[str, StringConstraints(pattern=ID_PATTERN), AfterValidator(check_id)]
BranchName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"),
    AfterValidator(lambda b: _check_branch(b)),
]
WorkItem = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
Skill = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _check_branch(name: str) -> str:
    """Refuse names git would reject or read as a range (``..``, ``.lock``, ``//``)."""
    if ".." in name or name.endswith((".lock", "/", ".")) or "//" in name or "/." in name:
        raise ValueError("not a valid git branch name")
    return name


class TaskContext(Message):
    """Where the agent works and what it is asked to do."""

    repository: Annotated[
        str, StringConstraints(min_length=1, max_length=2048), AfterValidator(check_repository)
    ]
    branch: BranchName = "main"
    work_items: Annotated[list[WorkItem], Field(min_length=1, max_length=100)]
    skills: Annotated[list[Skill], Field(max_length=50)] = []


class TaskOptions(Message):
    """Per-task knobs; ``timeout`` is the agent's wall-clock bound in seconds."""

    sandbox: bool | None = None
    timeout: Annotated[int, Field(ge=1, le=86_400)] | None = None
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    network: bool = False
    plan: Annotated[list[dict[str, object]], Field(max_length=200)] | None = None
    """A scripted provider plan (tool calls) for offline runs; ignored by real models."""
    merge: MergeMode = "none"
    """After the gates pass: push the agent's branch only (``none``), or also rebase it onto
    the base and fast-forward the base, one agent at a time per repository (``queue``)."""
    budget: TaskBudget | None = None
    """The most the task may spend (``{"tokens": n, "usd": x}``, either or both): reaching
    it stops the agent like a kill, its work salvaged, and the task ends ``failed`` with
    reason ``budget`` (not retried)."""


class SpawnAgentRequest(Message):
    """``POST /agents/spawn`` body (the original spec's SpawnAgentRequest)."""

    task_id: TaskId
    agent_type: AgentType
    context: TaskContext
    options: TaskOptions = TaskOptions()
    priority: Annotated[int, Field(ge=1, le=10)] = 5
    """1 is the highest priority, 10 the lowest (BullMQ's convention)."""
    gate_profile: GateProfile | None = None


class TaskQueued(Message):
    """The durable work item on the ``TASKS`` stream (``Nats-Msg-Id`` = task id)."""

    agent_id: str
    request: SpawnAgentRequest
    queued_at: datetime = Field(default_factory=utcnow)
