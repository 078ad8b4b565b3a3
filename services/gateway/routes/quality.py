"""``POST /api/quality/check``: the coordinator-compatible gate check.

It runs the same check the spawner runs before a commit, through the gates service,
for a worktree given by path (under the data dir) or by the live agent that owns it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from pydantic import ConfigDict, Field, StringConstraints, model_validator

from services.gateway.auth import RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse
from shared import subjects
from shared.bus import request
from shared.ids import AGENT_ID_PATTERN
from shared.messages.base import CamelModel
from shared.messages.gates import GateCheckRequested, GateDecision, GateProfile
from shared.messages.tasks import TaskId

router = APIRouter(prefix="/api/quality", tags=["quality"])

CHECK_TIMEOUT_S = 900.0
_CLIENT_ERRORS = {"bad_worktree", "bad_gates_config", "invalid_request"}


class QualityCheckRequest(CamelModel):
    """Which worktree to check (``worktree`` or ``agentId``), against which profile."""

    model_config = ConfigDict(extra="forbid", strict=True)

    worktree: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    agent_id: Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)] | None = None
    task_id: TaskId | None = None
    profile: GateProfile | None = None
    phase: Literal["pre-commit", "pre-push"] = "pre-commit"
    base: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    work_items: Annotated[
        list[Annotated[str, StringConstraints(max_length=2_000)]], Field(max_length=100)
    ] = []

    @model_validator(mode="after")
    def _one_target(self) -> QualityCheckRequest:
        if (self.worktree is None) == (self.agent_id is None):
            raise ValueError("give exactly one of worktree or agentId")
        return self


@router.post(
    "/check",
    response_model=GateDecision,
    responses={
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse, "description": "unknown agent"},
        409: {"model": ErrorResponse, "description": "the agent has no worktree now"},
        413: {"model": ErrorResponse, "description": "body over the size limit"},
        422: {"model": ErrorResponse, "description": "bad input or a path gates refuses"},
        503: {"model": ErrorResponse, "description": "gates unavailable"},
    },
)
async def check(body: QualityCheckRequest, deps: Deps, _: RequireOperator) -> GateDecision:
    """Approve or reject a worktree with one result per gate (YOLO comes from the server).

    An agent's worktree is checked by the gates of its host (its record's ``host``); a
    worktree named by path by the gates of the gateway's host (``MOSAIC_HOST_ID``)."""
    worktree, agent_id, task_id = body.worktree, body.agent_id, body.task_id
    profile = body.profile or deps.quality.default_gate_profile
    host = deps.host  # a worktree named by path: on the gateway's host
    if agent_id is not None:
        record = await deps.store.require_agent(agent_id)
        if not record.worktree:
            raise HTTPException(409, f"agent {agent_id} has no worktree now ({record.state})")
        worktree, task_id = record.worktree, record.task_id
        host = deps.host_of(record)
        profile = body.profile or record.gate_profile
    assert worktree is not None
    asked = GateCheckRequested(
        agent_id=agent_id or "api",
        task_id=task_id or "api",
        worktree=worktree,
        phase=body.phase,
        profile=profile,
        yolo=deps.quality.yolo_mode,
        base=body.base,
        work_items=tuple(body.work_items),
    )
    decision = await request(
        deps.broker, subjects.gates_check(host), asked, GateDecision, CHECK_TIMEOUT_S
    )
    if decision.error is not None:
        status = 422 if decision.error.code in _CLIENT_ERRORS else 503
        raise HTTPException(status, f"{decision.error.code}: {decision.error.message}")
    return decision
