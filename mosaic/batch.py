"""A batch of tasks, each pre-checked, then queued or refused: what the client's
``dispatch`` answers per task (``mosaic dispatch`` prints it).

Only the answer and its small rules live here; the calls are the client's own
(``check``, ``spawn_agent``), so the HTTP models are those of the gateway
(``shared.messages.checks.PreCheck``, ``shared.messages.http``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pydantic import ConfigDict

from shared.messages.base import CamelModel
from shared.messages.checks import PreCheck
from shared.messages.tasks import SpawnAgentRequest


class Dispatched(CamelModel):
    """One task of a batch: queued (``agent_id``) or refused (``reason``, and the checks
    when the pre-check refused it). A refused task was never queued."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_id: str | None
    queued: bool
    agent_id: str | None = None
    reason: str | None = None
    precheck: PreCheck | None = None


def task_id_of(request: SpawnAgentRequest | Mapping[str, Any]) -> str | None:
    """The task id a request names, as far as it names one (a malformed one may not)."""
    if isinstance(request, SpawnAgentRequest):
        return request.task_id
    value = request.get("taskId", request.get("task_id"))
    return value if isinstance(value, str) else None


def refused_by_check(task_id: str | None, verdict: PreCheck) -> Dispatched:
    """The pre-check said no: the failed checks are the reason."""
    return Dispatched(task_id=task_id, queued=False, reason=verdict.reason(), precheck=verdict)


def refused_by_error(task_id: str | None, error: str, *, field: str | None) -> Dispatched:
    """The gateway refused the check or the spawn (bad input, unavailable, auth)."""
    where = f" (field: {field})" if field else ""
    return Dispatched(task_id=task_id, queued=False, reason=f"{error}{where}")


class SpawnAnswer(Protocol):
    """What ``spawned`` reads of the client's answer to a spawn."""

    @property
    def task_id(self) -> str: ...
    @property
    def agent_id(self) -> str: ...
    @property
    def duplicate(self) -> bool: ...


def spawned(answer: SpawnAnswer, verdict: PreCheck | None) -> Dispatched:
    """What a spawn answered: queued, or refused as a task the gateway already knows (a
    duplicate is not queued again, so it is not counted as queued by this batch)."""
    task_id, agent_id = answer.task_id, answer.agent_id
    if answer.duplicate:
        reason = f"task id {task_id} is already known (agent {agent_id}): not queued again"
        return Dispatched(task_id=task_id, queued=False, agent_id=agent_id, reason=reason)
    return Dispatched(task_id=task_id, queued=True, agent_id=agent_id, precheck=verdict)


class Run:
    """One dispatch under way: the outcomes so far, each told to ``on_each``; once the
    gateway answered nothing at all (after the client's retries), the tasks after it are
    refused unsent instead of each waiting out the same retries."""

    def __init__(self, on_each: Callable[[Dispatched], None] | None) -> None:
        self.out: list[Dispatched] = []
        self._on_each = on_each
        self._unreachable: str | None = None

    def add(self, done: Dispatched) -> None:
        self.out.append(done)
        if self._on_each is not None:
            self._on_each(done)

    def unsent(self, task_id: str | None) -> bool:
        """True (and the task refused) when the gateway stopped answering earlier."""
        if self._unreachable is None:
            return False
        self.add(refused_by_error(task_id, f"not sent: {self._unreachable}", field=None))
        return True

    def refused(
        self, task_id: str | None, error: str, *, field: str | None, answered: bool
    ) -> None:
        """The gateway refused the task, or (``answered`` false) could not be reached."""
        self.add(refused_by_error(task_id, error, field=field))
        if not answered:
            self._unreachable = error
