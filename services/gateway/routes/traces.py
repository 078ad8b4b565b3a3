"""``GET /agents/{agentId}/trace``: the task's trace, for the agent page's timeline."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.auth import RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse
from services.gateway.routes.agents import AgentId
from shared import tracing
from shared.errors import NotFoundError
from shared.messages.traces import AgentTrace

router = APIRouter(prefix="/agents", tags=["agents"])


@router.get(
    "/{agent_id}/trace",
    response_model=AgentTrace,
    responses={
        401: {"model": ErrorResponse, "description": "missing or invalid token"},
        404: {
            "model": ErrorResponse,
            "description": "no such agent, or no trace kept for it (tracing was off when "
            "it was spawned, or its trace expired)",
        },
        503: {"model": ErrorResponse, "description": "Valkey unavailable"},
    },
)
async def agent_trace(agent_id: AgentId, deps: Deps, _: RequireOperator) -> AgentTrace:
    """The spans of the agent's task, one trace across the services, by start time.

    Each span: ``spanId``, ``parentId`` (``null`` for the root, the gateway's spawn),
    ``name``, ``service``, ``start`` and ``end`` (Unix epoch **milliseconds**) and
    ``attributes`` (ids, model and token counts, tool names, outcomes; never a secret).
    Spans arrive a moment after they end, so a running agent's trace grows.
    """
    await deps.store.require_agent(agent_id)
    trace_id = tracing.trace_id_of(await deps.store.agent_trace(agent_id))
    if trace_id is None:
        raise NotFoundError(
            f"no trace kept for agent {agent_id!r} "
            "(tracing was off when it was spawned, or its trace expired)"
        )
    spans = await deps.store.trace_spans(trace_id)
    return AgentTrace(trace_id=trace_id, spans=sorted(spans, key=lambda s: (s.start, s.end)))
