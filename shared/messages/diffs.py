"""An agent's diff against its base, for people (the agent's page in the dashboard).

The gateway asks gitops (``mosaic.gitops.diff``); gitops reads the agent's repository
while it exists (uncommitted and untracked work included) and, once it is gone, the
pushed commit. ``source`` says which one the answer is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.messages.base import Failure, Message
from shared.messages.gitops import AgentRepoRequest

DIFF_MAX_BYTES = 256_000
"""Bytes of patch text answered; the rest is cut and ``truncated`` says so."""
DIFF_MAX_FILES = 1000
"""Files listed; beyond it the rest is left out and ``truncated`` says so."""

_COMMIT = r"^[0-9a-f]{40}([0-9a-f]{24})?$"

DiffSource = Literal["workspace", "pushed"]
"""``workspace``: the agent's repository as it is now; ``pushed``: its pushed commit."""


class DiffRequested(AgentRepoRequest):
    """The diff of one agent against where it forked from ``base_branch``.

    ``pushed_commit`` (from the agent's record) is read once the repository is gone.
    """

    pushed_commit: str | None = Field(default=None, pattern=_COMMIT)
    merged_from: str | None = Field(default=None, pattern=_COMMIT)
    """With the merge queue: the base branch's tip before the agent's merge (the first
    half of ``mergedRange``). The base branch holds the pushed commit by then, so the
    fork point is looked for from here instead of from ``origin/<base>``."""


class DiffFile(Message):
    """One changed file: its path(s) and line counts; binary files are named, never shown."""

    path: str
    old_path: str | None = None
    added: int | None = None
    deleted: int | None = None
    binary: bool = False


class DiffFound(Message):
    """The diff, or why it cannot be had (``error.code`` ``not_found`` when the agent has
    neither a repository nor a pushed commit). The patch is redacted with the secret
    rules and capped at ``DIFF_MAX_BYTES``."""

    source: DiffSource | None = None
    base_commit: str | None = None
    head_commit: str | None = None
    """The pushed commit (``pushed``) or the agent's HEAD under its uncommitted work."""
    files: tuple[DiffFile, ...] = ()
    patch: str = ""
    truncated: bool = False
    error: Failure | None = None
