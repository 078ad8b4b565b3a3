"""Gitops request/reply contracts. Every reply carries ``error`` instead of raising
across the bus; the spawner records it on the agent."""

from __future__ import annotations

from pydantic import Field

from shared.messages.base import Failure, Message


class WorktreeRequested(Message):
    """Make (or reuse, for the same agent) the agent's worktree from ``base_branch``."""

    agent_id: str
    task_id: str
    repository: str
    base_branch: str = "main"
    attempt: int | None = Field(default=None, ge=1)
    """The spawner's attempt (its fencing token): gitops refuses it once a later attempt of
    the agent has been seen. None (operators, the killswitch) is not fenced."""


class WorktreeReady(Message):
    """Where the agent's worktree is and which branch it is on."""

    path: str | None = None
    branch: str | None = None
    repo_path: str | None = None
    base_commit: str | None = None
    reused: bool = False
    error: Failure | None = None


class CommitRequested(Message):
    """Stage everything in the worktree and commit it (after the secret scan)."""

    agent_id: str
    task_id: str
    repository: str
    base_branch: str = "main"
    attempt: int | None = Field(default=None, ge=1)
    """The spawner's attempt (its fencing token): gitops refuses it once a later attempt of
    the agent has been seen. None (operators, the killswitch) is not fenced."""
    message: str
    yolo: bool = False


class SecretFinding(Message):
    """Where the secret scan saw a secret, and by which rule; never the value."""

    path: str
    line: int
    rule: str


class CommitMade(Message):
    """The commit made, or why none was (``findings`` when the secret scan blocked it)."""

    commit: str | None = None
    nothing_to_commit: bool = False
    head: str | None = None
    """The agent branch's tip afterwards: ``commit``, or the unchanged tip when nothing was
    committed (equal to the worktree's ``baseCommit`` when the branch has no work at all)."""
    findings: tuple[SecretFinding, ...] = ()
    error: Failure | None = None


class PushRequested(Message):
    """Check for conflicts with the remote base, then push the agent branch."""

    agent_id: str
    task_id: str
    repository: str
    base_branch: str = "main"
    attempt: int | None = Field(default=None, ge=1)
    """The spawner's attempt (its fencing token): gitops refuses it once a later attempt of
    the agent has been seen. None (operators, the killswitch) is not fenced."""


class PushDone(Message):
    """The remote branch pushed, or the conflicting paths / failure."""

    remote_branch: str | None = None
    commit: str | None = None
    conflicts: tuple[str, ...] = ()
    error: Failure | None = None


class WorktreeRemoveRequested(Message):
    """Remove the agent's worktree; unpushed work is salvaged to a local branch first."""

    agent_id: str
    task_id: str
    repository: str
    base_branch: str = "main"
    attempt: int | None = Field(default=None, ge=1)
    """The spawner's attempt (its fencing token): gitops refuses it once a later attempt of
    the agent has been seen. None (operators, the killswitch) is not fenced."""


class WorktreeRemoved(Message):
    """What removal did: ``salvage_branch`` names where unpushed work was kept."""

    removed: bool = False
    salvage_branch: str | None = None
    error: Failure | None = None
