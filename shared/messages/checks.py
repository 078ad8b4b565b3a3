"""Whether a task could run, asked before it is queued (``POST /agents/check``).

``PreCheck`` is the HTTP answer (the gateway sends it, ``mosaic.client`` reads it, the
one model for both); ``RepositoryCheckRequested``/``RepositoryChecked`` the question the
gateway puts to gitops over NATS, since only gitops reads repositories; and
``EnvironmentCheckRequested``/``EnvironmentChecked`` the one it puts to a docker spawner,
the only kind of process that knows which environment images its Docker host holds.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from shared.messages.base import Failure, Message

CHECK_REQUEST: Final = "request"
CHECK_TASK: Final = "task"
CHECK_INTAKE: Final = "intake"
CHECK_SPAWNER: Final = "spawner"
CHECK_PROVIDER: Final = "provider"
CHECK_REPOSITORY: Final = "repository"
CHECK_BRANCH: Final = "branch"
CHECK_GATES: Final = "gates"
CHECK_ENVIRONMENT: Final = "environment"
CHECK_IMAGE: Final = "image"
CHECK_NAMES: Final = (
    CHECK_REQUEST,
    CHECK_TASK,
    CHECK_INTAKE,
    CHECK_SPAWNER,
    CHECK_PROVIDER,
    CHECK_REPOSITORY,
    CHECK_BRANCH,
    CHECK_GATES,
    CHECK_ENVIRONMENT,
    CHECK_IMAGE,
)
"""Every check ``POST /agents/check`` answers, in the order it lists them."""


NOT_CHECKED: Final = "not checked"
"""How the detail of a check starts when it was not made (an earlier check failed, a
service did not answer): a client may show only the checks that were made and failed."""


class Check(Message):
    """One condition a task needs; ``detail`` says what was found, or what to fix."""

    name: str
    ok: bool
    detail: str


class PreCheck(Message):
    """``POST /agents/check``: ``ok`` when every check passed (the task could run now)."""

    ok: bool
    checks: tuple[Check, ...]

    @classmethod
    def of(cls, checks: list[Check]) -> PreCheck:
        """The verdict of ``checks``: ok only when each one is."""
        return cls(ok=all(c.ok for c in checks), checks=tuple(checks))

    def failed(self) -> tuple[Check, ...]:
        """The checks that did not pass, in order."""
        return tuple(c for c in self.checks if not c.ok)

    def reason(self) -> str:
        """The failed checks in one line (empty when ``ok``)."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failed())


class RepositoryCheckRequested(Message):
    """Can ``repository`` be reached, has it ``branch``, and are the files at that
    branch's tip that decide how a task is run (gates, environment) valid?"""

    repository: str = Field(min_length=1, max_length=2048)
    branch: str = Field(min_length=1, max_length=200)


class RepositoryChecked(Message):
    """gitops's answer: the checks it made (repository, branch, gates, environment) in
    order; ``commit`` the branch tip they were read at; ``environment_source`` the file
    that declares an environment, if any. ``error`` when the request itself was bad."""

    checks: tuple[Check, ...] = ()
    commit: str | None = None
    environment_source: str | None = None
    repo_path: str | None = None
    host: str | None = None
    """The host whose gitops answered: ``repo_path`` is on that host's disk."""
    """gitops's cache repository (where a spawner on its host reads the declaration)."""
    error: Failure | None = None


class EnvironmentCheckRequested(Message):
    """Could a docker spawner give a task at ``commit`` of the cache repository at
    ``repo_path`` its environment now: is the image cached, or buildable?"""

    repo_path: str = Field(min_length=1, max_length=4096)
    commit: str = Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class EnvironmentChecked(Message):
    """A spawner's answer: ``ok`` and what it found (the image cached, what it would be
    built from, or why it cannot be had), and which spawner looked."""

    ok: bool = False
    detail: str = ""
    spawner: str | None = None
    error: Failure | None = None


class RepositoryPathRequested(Message):
    """Is there a directory at ``path`` (a local repository named by a task)? Asked of
    any host's gitops at submit: the gateway never reads the workspace or the disk."""

    path: str = Field(min_length=1, max_length=4096)


class RepositoryPathFound(Message):
    """gitops's answer: whether ``path`` is a directory on its host (``host``)."""

    exists: bool = False
    host: str | None = None
    error: Failure | None = None
