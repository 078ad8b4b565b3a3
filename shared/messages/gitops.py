"""Gitops request/reply contracts. Every reply carries ``error`` instead of raising
across the bus; the spawner records it on the agent."""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.messages.base import Failure, Message


class AgentRepoRequest(Message):
    """What every gitops request names: whose repository (agent and task), which remote,
    and the base branch it was made from."""

    agent_id: str
    task_id: str
    repository: str
    base_branch: str = "main"


class FencedRequest(AgentRepoRequest):
    """A request that writes: fenced by the attempt that sends it."""

    attempt: int | None = Field(default=None, ge=1)
    """The spawner's attempt (its fencing token): gitops refuses it once a later attempt of
    the agent has been seen. None (operators, the killswitch) is not fenced."""


class WorktreeRequested(FencedRequest):
    """Make (or reuse, for the same agent) the agent's worktree from ``base_branch``."""


class WorktreeReady(Message):
    """Where the agent's worktree is and which branch it is on."""

    path: str | None = None
    branch: str | None = None
    repo_path: str | None = None
    base_commit: str | None = None
    reused: bool = False
    shared_objects: str | None = None
    """The cache's object directory the agent's repository borrows through alternates:
    sandboxes mount it read-only at the same path (``SandboxSpec.readonly``)."""
    error: Failure | None = None


class CommitRequested(FencedRequest):
    """Import the agent's branch into the cache and commit what it left uncommitted
    (after the secret scan); ``error.code`` ``wrong_branch`` when its HEAD is not on
    its branch (mid-rebase): told to the agent."""

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


class PushRequested(FencedRequest):
    """Check for conflicts with the remote base, then push the agent branch."""


class PushDone(Message):
    """The remote branch pushed, or the conflicting paths / failure.

    With ``conflicts``, ``base_commit`` is the base they were found against (the fetched
    ``origin/<base>``, or the base branch's tip for the merge queue): the spawner makes
    it the agent's ``origin/<base>`` before telling it.
    """

    remote_branch: str | None = None
    commit: str | None = None
    conflicts: tuple[str, ...] = ()
    base_commit: str | None = None
    """The freshly fetched ``origin/<base>`` the conflicts are against (the agent rebases
    onto or merges this commit)."""
    error: Failure | None = None


class WorktreeRemoveRequested(FencedRequest):
    """Remove the agent's worktree; unpushed work is salvaged to a local branch first."""


class WorktreeRemoved(Message):
    """What removal did: ``salvage_branch`` names where unpushed work was kept."""

    removed: bool = False
    salvage_branch: str | None = None
    error: Failure | None = None


class LineRange(Message):
    """Lines ``start..end`` (inclusive) of the base version of a file that a change
    replaced or deleted. A pure insertion after line ``n`` is the empty range
    ``start = n + 1, end = n`` (it sits between two lines of the base)."""

    start: int = Field(ge=1)
    end: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> LineRange:
        if self.end < self.start - 1:
            raise ValueError(f"end ({self.end}) is before start ({self.start}) - 1")
        return self


class FileChange(Message):
    """One changed file against the base: the base lines its hunks touch, or ``ranges``
    ``None`` when only the whole file can be said to change (binary, renamed, a mode
    change, too many hunks)."""

    path: str
    ranges: tuple[LineRange, ...] | None = None


class ChangesRequested(AgentRepoRequest):
    """An agent's current changes against its base, uncommitted work included."""


class ChangesFound(Message):
    """The agent's changed files (against ``base_commit``), or why they are unknown."""

    base_commit: str | None = None
    files: tuple[FileChange, ...] = ()
    truncated: bool = False
    """More files changed than are listed (the rest is not forecast)."""
    error: Failure | None = None


class RepoPushed(Message):
    """Published (core NATS, advisory) on ``mosaic.repo.pushed`` when gitops pushed an
    agent's branch: what that branch changes against its base, for the conflict forecast."""

    repository: str
    base_branch: str
    agent_id: str
    task_id: str
    branch: str
    commit: str
    base_commit: str
    files: tuple[FileChange, ...] = ()
    truncated: bool = False


class BaseStatusRequested(AgentRepoRequest):
    """Where the agent branch stands against the remote base."""


class BaseStatus(Message):
    """The agent branch's tip, the cache's ``origin/<base>`` and their merge base: the
    spawner compares ``merge_base`` with the attempt's original base to see whether the
    agent rebased or merged onto a base that moved (then the pre-push gate runs)."""

    head: str | None = None
    base: str | None = None
    merge_base: str | None = None
    error: Failure | None = None


class IntegrateRequested(FencedRequest):
    """Rebase the agent branch onto the freshly fetched base in a gitops scratch
    repository (merge queue); ``discard`` only removes that scratch repository."""

    discard: bool = False


class Integrated(Message):
    """The integrated commit, checked out at ``scratch`` for the gates; or the conflicts.

    ``base_commit`` is the fetched base the agent's commits were replayed onto (on a
    conflict, the commit the agent must rebase onto or merge); ``head`` the agent
    branch's tip that was replayed. ``commit == base_commit`` when the base already has
    the whole change.
    """

    commit: str | None = None
    base_commit: str | None = None
    head: str | None = None
    scratch: str | None = None
    conflicts: tuple[str, ...] = ()
    error: Failure | None = None


class LandRequested(FencedRequest):
    """Fast-forward the remote base from ``onto`` to ``commit`` (the integrated commit,
    after the gates passed on it) and push the agent branch at ``head``, atomically."""

    commit: str
    onto: str
    head: str


class Landed(Message):
    """The base branch now at ``commit``; ``moved`` when the remote refused because the
    base moved since ``onto`` (nothing changed: integrate again)."""

    commit: str | None = None
    range: str | None = None
    remote_branch: str | None = None
    head: str | None = None
    """The commit ``remote_branch`` (the agent branch) was pushed at."""
    moved: bool = False
    error: Failure | None = None
