"""Each HTTP operation of the gateway, written once for both clients.

An exchange is a generator: it yields the requests it needs (``Call``), receives each
answer's JSON (or has the request's ``ClientError`` thrown into it) and returns the
operation's result. ``MosaicClient`` drives exchanges with blocking I/O and
``AsyncMosaicClient`` with ``await`` (the sans-I/O style of h11), so paths, parameters,
answer models and the dispatch loop exist once, whatever the caller's I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mosaic import batch
from mosaic.batch import Dispatched
from mosaic.clienterrors import ClientError
from shared.messages.agents import AgentEvent, AgentRecord
from shared.messages.audit import AuditEntry
from shared.messages.checks import PreCheck
from shared.messages.gates import GateDecision
from shared.messages.http import AgentList, HoldStatus, KillResult, SpawnAccepted
from shared.messages.tasks import SpawnAgentRequest
from shared.messages.traces import AgentTrace

T = TypeVar("T")

SpawnBody = SpawnAgentRequest | Mapping[str, Any]
OnDispatched = Callable[[Dispatched], None]
"""Called after each task of a ``dispatch`` (a progress bar)."""


@dataclass(frozen=True)
class Call:
    """One HTTP request an exchange needs."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    body: Any = None


Exchange = Generator[Call, Any, T]
"""Yields the calls it needs, is sent each answer's JSON, returns the result."""


def _one(call: Call, read: Callable[[Any], T]) -> Exchange[T]:
    answer = yield call
    return read(answer)


def _as_dict(answer: Any) -> dict[str, Any]:
    return dict(answer)


def _params(**values: str | int | None) -> dict[str, str | int]:
    """Query parameters without the ones not given (``None`` or empty)."""
    return {name: value for name, value in values.items() if value not in (None, "")}


def spawn_body(request: SpawnBody) -> Any:
    """The JSON of a spawn request, typed or already a mapping (validated by the gateway)."""
    if isinstance(request, SpawnAgentRequest):
        return request.model_dump(mode="json", exclude_none=True)
    return dict(request)


def health() -> Exchange[dict[str, Any]]:
    """``GET /health`` (no token needed)."""
    return _one(Call("GET", "/health"), _as_dict)


def whoami() -> Exchange[str]:
    """The role of the token: ``operator`` or ``admin``."""
    return _one(Call("GET", "/auth/whoami"), lambda answer: str(answer["role"]))


def spawn_agent(request: SpawnBody) -> Exchange[SpawnAccepted]:
    """Queue a task; the answer names its agent."""
    return _one(
        Call("POST", "/agents/spawn", body=spawn_body(request)), SpawnAccepted.model_validate
    )


def check(request: SpawnBody) -> Exchange[PreCheck]:
    """Whether the task could run now (``POST /agents/check``); queues nothing."""
    return _one(Call("POST", "/agents/check", body=spawn_body(request)), PreCheck.model_validate)


def dispatch(
    requests: Iterable[SpawnBody], precheck: bool, on_each: OnDispatched | None
) -> Exchange[list[Dispatched]]:
    """Queue each task that passes its pre-check, one after another; per task, queued
    (its agent) or refused (why). One task's refusal (bad input, a failed check, a 503)
    does not stop the others; a gateway that does not answer at all (after the retries)
    does: the tasks after it are refused unsent."""
    run = batch.Run(on_each)
    for request in requests:
        task_id = batch.task_id_of(request)
        if run.unsent(task_id):
            continue
        try:
            verdict = (yield from check(request)) if precheck else None
            if verdict is not None and not verdict.ok:
                run.add(batch.refused_by_check(task_id, verdict))
                continue
            answer = yield from spawn_agent(request)
        except ClientError as exc:
            run.refused(task_id, str(exc), field=exc.field, answered=exc.status != 0)
            continue
        run.add(batch.spawned(answer, verdict))
    return run.out


def agent_status(agent_id: str) -> Exchange[AgentRecord]:
    """One agent's record."""
    return _one(Call("GET", f"/agents/{agent_id}/status"), AgentRecord.model_validate)


def agent_events(agent_id: str) -> Exchange[list[AgentEvent]]:
    """One agent's stored event history, in order."""
    return _one(
        Call("GET", f"/agents/{agent_id}/events"),
        lambda answer: [AgentEvent.model_validate(e) for e in answer],
    )


def agent_trace(agent_id: str) -> Exchange[AgentTrace]:
    """The agent's task trace: its spans across the services, by start time."""
    return _one(Call("GET", f"/agents/{agent_id}/trace"), AgentTrace.model_validate)


def list_agents(
    state: str | None, task_id: str | None, offset: int, limit: int
) -> Exchange[AgentList]:
    """A page of agents, newest first, optionally filtered."""
    params = _params(offset=offset, limit=limit, state=state, taskId=task_id)
    return _one(Call("GET", "/agents", params), AgentList.model_validate)


def kill_agent(agent_id: str) -> Exchange[KillResult]:
    """Kill one agent; answers once it is final (or the gateway's wait ran out)."""
    return _one(Call("POST", f"/agents/{agent_id}/kill"), KillResult.model_validate)


def kill_all_agents() -> Exchange[list[KillResult]]:
    """Kill every live agent (needs the admin token)."""
    return _one(
        Call("POST", "/agents/kill-all"),
        lambda answer: [KillResult.model_validate(k) for k in answer],
    )


def queue_stats() -> Exchange[dict[str, Any]]:
    """``GET /queue``: waiting and in-flight tasks per priority, counts per state."""
    return _one(Call("GET", "/queue"), _as_dict)


def hold_status() -> Exchange[HoldStatus]:
    """``GET /agents/hold``: the hold in force (a kill-all or a spent budget), if any."""
    return _one(Call("GET", "/agents/hold"), HoldStatus.model_validate)


def resume() -> Exchange[HoldStatus]:
    """``POST /agents/resume``: lift a hold (admin token); the hold after it."""
    return _one(Call("POST", "/agents/resume"), HoldStatus.model_validate)


def audit(kind: str | None, agent_id: str | None, limit: int) -> Exchange[list[AuditEntry]]:
    """``GET /audit``: audited acts, newest first."""
    return _one(
        Call("GET", "/audit", _params(limit=limit, kind=kind, agentId=agent_id)),
        lambda answer: [AuditEntry.model_validate(e) for e in answer],
    )


def quality_check(body: Mapping[str, Any]) -> Exchange[GateDecision]:
    """``POST /api/quality/check``: run a gate profile on a worktree or an agent's."""
    return _one(Call("POST", "/api/quality/check", body=dict(body)), GateDecision.model_validate)
