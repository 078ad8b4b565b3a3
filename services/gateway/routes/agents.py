"""The original spec's agent API: spawn, list, status, events, kill, kill-all."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.gateway.auth import RequireAdmin, RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse
from services.gateway.kills import hold_recorded, kill_and_wait
from services.gateway.precheck import precheck
from services.gateway.submit import submit
from shared.ids import AGENT_ID_PATTERN, ID_MAX_LENGTH
from shared.messages.agents import AgentEvent, AgentRecord, AgentState
from shared.messages.checks import PreCheck
from shared.messages.http import AgentList, KillResult, SpawnAccepted
from shared.messages.kill import KillOrdered
from shared.messages.tasks import SpawnAgentRequest

router = APIRouter(prefix="/agents", tags=["agents"])

AgentId = Annotated[str, Path(pattern=AGENT_ID_PATTERN, description="the agent's id")]
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "missing or invalid token"},
    422: {"model": ErrorResponse, "description": "invalid input; names the field"},
    503: {"model": ErrorResponse, "description": "NATS or Valkey unavailable; nothing stored"},
}
_SPAWN_503: dict[int | str, dict[str, object]] = {
    503: {
        "model": ErrorResponse,
        "description": (
            "nothing stored: NATS or Valkey unavailable (`unavailable`), or spawners run "
            "but none can run an agent (`no_spawner_ready`: the message names what to "
            "install or set, e.g. a sandbox or ANTHROPIC_API_KEY / MOSAIC_PROVIDER)"
        ),
    }
}
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "no such agent"}
}
_SPAWN_EXAMPLES = {
    "worker": {
        "summary": "A worker on a local repository",
        "value": {
            "taskId": "issue-42",
            "agentType": "worker",
            "context": {
                "repository": "/srv/repos/shop.git",
                "branch": "main",
                "workItems": ["Add a /health endpoint returning {status: ok}"],
                "skills": ["python"],
            },
            "options": {"timeout": 1800, "maxRetries": 2},
            "priority": 3,
            "gateProfile": "standard",
        },
    },
    "scripted": {
        "summary": "A scripted plan (offline demos, tests)",
        "value": {
            "taskId": "demo-1",
            "agentType": "worker",
            "context": {"repository": "https://git.example.org/team/shop.git", "workItems": ["x"]},
            "options": {
                "plan": [
                    {"tool": "write_file", "input": {"path": "a.txt", "content": "hi\n"}},
                    {"tool": "finish", "input": {"summary": "wrote a.txt"}},
                ]
            },
        },
    },
}


async def strict_spawn_request(request: Request) -> SpawnAgentRequest:
    """The spawn body validated strictly (``"5"`` is not a priority), the one rule of
    ``POST /agents/spawn`` and ``POST /agents/check``; 422 naming the field otherwise.

    FastAPI has parsed the body already (for the schema and the examples), leniently;
    this is the validation that decides."""
    try:
        return SpawnAgentRequest.model_validate_json(await request.body(), strict=True)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc


@router.post(
    "/spawn",
    status_code=202,
    response_model=SpawnAccepted,
    responses={
        **_ERRORS,
        **_SPAWN_503,
        200: {"model": SpawnAccepted, "description": "task id already known: its agent"},
        202: {"model": SpawnAccepted, "description": "queued durably"},
        413: {"model": ErrorResponse, "description": "body too large"},
    },
)
async def spawn(
    request: Request,
    body: Annotated[SpawnAgentRequest, Body(openapi_examples=_SPAWN_EXAMPLES)],
    deps: Deps,
    _: RequireOperator,
) -> Response:
    """Queue a task for an agent; answers 202 with the agent id once the task is durable.

    A task id seen before is not queued again: the answer is 200 with its agent. Types
    are strict: ``"5"`` is not a priority and ``0`` is not a boolean.
    """
    started = time.perf_counter()
    body = await strict_spawn_request(request)
    record, created = await submit(body, deps)
    accepted = SpawnAccepted(
        agent_id=record.agent_id,
        task_id=record.task_id,
        state=record.state.value,
        task_state=record.task_state.value,
        duplicate=not created,
    )
    if created:
        deps.metrics.spawn_accept.observe(time.perf_counter() - started)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202 if created else 200)


@router.post(
    "/check",
    response_model=PreCheck,
    responses={
        **_ERRORS,
        200: {"model": PreCheck, "description": "every check, passed or not; nothing queued"},
        413: {"model": ErrorResponse, "description": "body too large"},
    },
)
async def check(
    request: Request,
    body: Annotated[SpawnAgentRequest, Body(openapi_examples=_SPAWN_EXAMPLES)],
    deps: Deps,
    _: RequireOperator,
) -> PreCheck:
    """Whether the task could run now, without queueing it or storing anything.

    Takes the body of ``POST /agents/spawn`` (a malformed one gets the same 422) and
    answers ``ok`` with each check: the task id is new, intake is not held, a spawner is
    ready with a model provider, gitops reaches the repository and finds the branch, the
    repository's ``.mosaic/gates.toml`` and environment files are valid at that branch,
    and the environment can be had on the ready spawners. A failed check says what to fix.
    """
    return await precheck(await strict_spawn_request(request), deps)


@router.get("", response_model=AgentList, responses=_ERRORS)
async def list_agents(
    deps: Deps,
    _: RequireOperator,
    state: Annotated[AgentState | None, Query(description="only agents in this state")] = None,
    task_id: Annotated[str | None, Query(alias="taskId", max_length=ID_MAX_LENGTH)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AgentList:
    """Agents, newest first, optionally filtered by state or task."""
    store = deps.store
    if task_id is not None:
        agent_id = await store.agent_for_task(task_id)
        ids = [agent_id] if agent_id else []
    else:
        ids = (
            await store.list_agent_ids(0, 10_000)
            if state
            else await store.list_agent_ids(offset, limit)
        )
    records = await store.get_agents(ids)  # pipelined: one connection, one round trip
    if state is not None:
        records = [r for r in records if r.state == state]
    total = len(records) if (state or task_id) else await store.count_agents()
    if state is not None or task_id is not None:
        records = records[offset : offset + limit]
    return AgentList(agents=records, total=total, offset=offset, limit=limit)


@router.get(
    "/{agent_id}/status",
    response_model=AgentRecord,
    responses={**_ERRORS, **_NOT_FOUND},
)
async def status(agent_id: AgentId, deps: Deps, _: RequireOperator) -> AgentRecord:
    """State, timestamps, branch, progress and error of one agent."""
    return await deps.store.require_agent(agent_id)


@router.get(
    "/{agent_id}/events",
    response_model=list[AgentEvent],
    responses={**_ERRORS, **_NOT_FOUND},
)
async def events(agent_id: AgentId, deps: Deps, _: RequireOperator) -> list[AgentEvent]:
    """The agent's event history, in order."""
    await deps.store.require_agent(agent_id)
    return await deps.store.events(agent_id)


@router.post(
    "/{agent_id}/kill",
    response_model=KillResult,
    responses={**_ERRORS, **_NOT_FOUND},
)
async def kill(agent_id: AgentId, deps: Deps, role: RequireOperator) -> KillResult:
    """Kill one agent over core NATS; answers when it is final or after the wait."""
    record = await deps.store.require_agent(agent_id)
    started = time.perf_counter()
    order = KillOrdered(reason="killed via HTTP", requested_by=f"http:{role.name.lower()}")
    final = await kill_and_wait(deps, [record.agent_id], order)
    state = final.get(agent_id, record.state)
    return KillResult(
        agent_id=agent_id,
        state=state.value,
        killed=state == AgentState.KILLED,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
    )


@router.post(
    "/kill-all",
    response_model=list[KillResult],
    responses={
        **_ERRORS,
        403: {"model": ErrorResponse, "description": "needs the admin role"},
    },
)
async def kill_all(deps: Deps, _: RequireAdmin) -> list[KillResult]:
    """Kill every live agent (admins only); reports each agent that was live."""
    started = time.perf_counter()
    order = KillOrdered(reason="kill-all via HTTP", requested_by="http:admin")
    final = await kill_and_wait(deps, None, order)  # queued agents wait for the resume
    await hold_recorded(deps, deps.kill_wait_s)
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    return [
        KillResult(
            agent_id=agent_id,
            state=state.value,
            killed=state == AgentState.KILLED,
            elapsed_ms=elapsed,
        )
        for agent_id, state in final.items()
    ]
