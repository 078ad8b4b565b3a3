"""A batch of tasks, each pre-checked, then queued or refused: what the client's
``dispatch`` answers per task (``mosaic dispatch`` prints it).

Only the answer and its small rules live here; the calls are the client's own
(``check``, ``spawn_agent``), so the HTTP models are those of the gateway
(``shared.messages.checks.PreCheck``) and of ``mosaic.client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def refused_by_error(task_id: str | None, error: Exception, *, field: str | None) -> Dispatched:
    """The gateway refused the check or the spawn (bad input, unavailable, auth)."""
    where = f" (field: {field})" if field else ""
    return Dispatched(task_id=task_id, queued=False, reason=f"{error}{where}")


def spawned(
    task_id: str, agent_id: str, *, duplicate: bool, verdict: PreCheck | None
) -> Dispatched:
    """What a spawn answered: queued, or refused as a task the gateway already knows (a
    duplicate is not queued again, so it is not counted as queued by this batch)."""
    if duplicate:
        reason = f"task id {task_id} is already known (agent {agent_id}): not queued again"
        return Dispatched(task_id=task_id, queued=False, agent_id=agent_id, reason=reason)
    return Dispatched(task_id=task_id, queued=True, agent_id=agent_id, precheck=verdict)
