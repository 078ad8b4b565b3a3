"""Who an attempt is: its agent, task, request and number, and the tracker that fences
every write it makes with that number."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.spawner.merging import Where
from shared.messages.gitops import WorktreeRemoveRequested, WorktreeRequested
from shared.messages.tasks import SpawnAgentRequest, TaskQueued
from shared.tracker import AgentTracker, AttemptTracker


@dataclass(frozen=True)
class Attempt:
    """One attempt of one agent (every step of the run takes it)."""

    request: SpawnAgentRequest
    agent_id: str
    number: int
    tracker: AttemptTracker = field(compare=False)
    """Every write of this attempt carries ``number`` as its fencing token."""

    @classmethod
    def of(cls, tracker: AgentTracker, task: TaskQueued, number: int) -> Attempt:
        """The attempt ``number`` of the queued ``task``."""
        request = task.request
        fenced = AttemptTracker(tracker, task.agent_id, request.task_id, number)
        return cls(request, task.agent_id, number, fenced)

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.request.task_id

    @property
    def log(self) -> dict[str, Any]:
        """The ``extra`` of every log line about this attempt."""
        return {"agent_id": self.agent_id, "task_id": self.task_id}

    @property
    def repository(self) -> str:
        """The repository the agent works on."""
        return self.request.context.repository

    @property
    def base_branch(self) -> str:
        """The branch its work is based on and pushed to."""
        return self.request.context.branch

    def place(self, *, fenced: bool = True) -> Where:
        """Where the attempt works, with its fencing token unless ``fenced`` is False."""
        number = self.number if fenced else None
        return Where(self.agent_id, self.task_id, self.repository, self.base_branch, number)

    def where(self) -> dict[str, Any]:
        """The fields every fenced gitops request of this attempt carries."""
        return self.place().fenced()

    def worktree_requested(self) -> WorktreeRequested:
        """The ask for this attempt's worktree."""
        return WorktreeRequested(**self.where())

    def worktree_remove_requested(self) -> WorktreeRemoveRequested:
        """The ask to salvage and remove this attempt's worktree."""
        return WorktreeRemoveRequested(**self.where())
