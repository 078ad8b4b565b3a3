"""Reads behind the agent's page in the dashboard: its conversation, its diff against the
base and its gate outputs (operators and admins, like every read of an agent)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from services.gateway.agent_page import AgentDiff, AgentGates, gate_runs
from services.gateway.auth import RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse, error_response
from shared import subjects
from shared.bus import request
from shared.ids import AGENT_ID_PATTERN
from shared.messages.conversation import CONVERSATION_MAX_ENTRIES, ConversationPage
from shared.messages.diffs import DiffFound, DiffRequested

router = APIRouter(prefix="/agents", tags=["agents"])

DIFF_TIMEOUT_S = 20.0
"""How long gitops may take to read a diff (a large workspace is snapshotted first)."""

AgentId = Annotated[str, Path(pattern=AGENT_ID_PATTERN, description="the agent's id")]
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "missing or invalid token"},
    404: {"model": ErrorResponse, "description": "no such agent (or, for a diff, no diff)"},
    422: {"model": ErrorResponse, "description": "invalid input; names the field"},
    503: {"model": ErrorResponse, "description": "NATS, Valkey or gitops unavailable"},
}
_NO_DIFF = {"not_found", "worktree_not_found", "branch_not_found"}
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _merged_from(merged_range: str | None) -> str | None:
    """The base's tip before a queued merge (``<old>..<new>``), when well formed."""
    old = (merged_range or "").split("..")[0]
    return old if _COMMIT.match(old) else None


@router.get("/{agent_id}/conversation", response_model=ConversationPage, responses=_ERRORS)
async def conversation(
    agent_id: AgentId,
    deps: Deps,
    _: RequireOperator,
    offset: Annotated[int, Query(ge=0, le=CONVERSATION_MAX_ENTRIES)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ConversationPage:
    """The agent's conversation: model turns, tool calls and tool results, oldest first,
    secrets masked and each entry capped. ``total`` counts the entries kept; ``dropped``
    the older ones the cap let go."""
    await deps.store.require_agent(agent_id)
    return await deps.store.conversation(agent_id, offset, limit)


@router.get("/{agent_id}/gates", response_model=AgentGates, responses=_ERRORS)
async def gates(agent_id: AgentId, deps: Deps, _: RequireOperator) -> AgentGates:
    """Each gate check of the agent: every gate's status, duration and (masked) output."""
    await deps.store.require_agent(agent_id)
    return AgentGates(agent_id=agent_id, runs=gate_runs(await deps.store.events(agent_id)))


@router.get("/{agent_id}/diff", response_model=AgentDiff, responses=_ERRORS)
async def diff(agent_id: AgentId, deps: Deps, _: RequireOperator) -> AgentDiff | JSONResponse:
    """The agent's diff against where it forked from its base branch, asked of gitops:
    its repository as it is while it exists (``source: workspace``), the pushed commit
    after (``source: pushed``). Secrets masked, the patch capped (``truncated``), binary
    files named only. 404 (``no_diff``) when there is neither yet or any more."""
    record = await deps.store.require_agent(agent_id)
    asked = DiffRequested(
        agent_id=record.agent_id,
        task_id=record.task_id,
        repository=record.repository,
        base_branch=record.branch,
        pushed_commit=record.pushed_commit,
        merged_from=_merged_from(record.merged_range),
    )
    subject = subjects.gitops(deps.host_of(record), subjects.GitOp.DIFF)  # its worktree's host
    found = await request(deps.broker, subject, asked, DiffFound, DIFF_TIMEOUT_S)
    if found.error is not None:
        if found.error.code in _NO_DIFF:
            return error_response(404, "no_diff", f"agent {agent_id}: {found.error.message}")
        status = 503 if found.error.retryable else 409
        return error_response(status, found.error.code, found.error.message)
    assert found.source is not None
    return AgentDiff(
        agent_id=agent_id,
        source=found.source,
        base_branch=record.branch,
        base_commit=found.base_commit,
        head_commit=found.head_commit,
        branch=record.pushed_branch if found.source == "pushed" else record.agent_branch,
        files=found.files,
        patch=found.patch,
        truncated=found.truncated,
    )
