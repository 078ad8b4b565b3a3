"""What the agent's page shows beyond its status: gate runs read from its ``gate``
events, with every output masked and capped again on the way out (gate output is a
command's output, and events recorded before masking existed were stored as they came)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared import secrets_rules
from shared.messages.agents import AgentEvent
from shared.messages.base import CamelModel
from shared.messages.diffs import DiffFile, DiffSource

GATE_OUTPUT_MAX_CHARS = 8000
"""Characters of one gate's output answered (the gates service already trims to its
``GATES_EXCERPT_CHARS``)."""


class GateOutput(CamelModel):
    """One gate of one check: status, duration and its (masked, capped) output."""

    name: str
    status: str
    duration_ms: int = 0
    output: str = ""
    figure: float | None = None
    command: str | None = None


class GateRun(CamelModel):
    """One gate check of the agent (pre-commit or pre-push), as its ``gate`` event says."""

    seq: int
    at: datetime
    phase: str | None = None
    approved: bool
    yolo: bool = False
    commit: str | None = None
    gates: list[GateOutput]


class AgentGates(CamelModel):
    """``GET /agents/{agentId}/gates``: every check the agent's work went through, in order."""

    agent_id: str
    runs: list[GateRun]


class AgentDiff(CamelModel):
    """``GET /agents/{agentId}/diff``: ``source`` says whether this is the agent's
    repository as it is now (``workspace``) or the commit it pushed (``pushed``)."""

    agent_id: str
    source: DiffSource
    base_branch: str
    base_commit: str | None = None
    head_commit: str | None = None
    branch: str | None = None
    files: tuple[DiffFile, ...] = ()
    patch: str = ""
    truncated: bool = False


def _masked(text: str) -> str:
    masked = secrets_rules.redact(text)
    if len(masked) > GATE_OUTPUT_MAX_CHARS:
        return masked[:GATE_OUTPUT_MAX_CHARS] + "\n[… cut]"
    return masked


def _gate(result: dict[str, Any]) -> GateOutput:
    command = result.get("command")
    return GateOutput(
        name=str(result.get("name", "?")),
        status=str(result.get("status", "?")),
        duration_ms=int(result.get("duration_ms", result.get("durationMs", 0)) or 0),
        output=_masked(str(result.get("excerpt", ""))),
        figure=result.get("figure"),
        command=_masked(command) if isinstance(command, str) else None,
    )


def gate_runs(events: list[AgentEvent]) -> list[GateRun]:
    """The agent's gate checks, from its ``gate`` events, oldest first."""
    runs = []
    for event in events:
        if event.kind != "gate":
            continue
        detail = event.detail
        results = detail.get("results") or []
        runs.append(
            GateRun(
                seq=event.seq,
                at=event.at,
                phase=detail.get("phase"),
                approved=bool(detail.get("approved")),
                yolo=bool(detail.get("yolo")),
                commit=detail.get("commit"),
                gates=[_gate(r) for r in results if isinstance(r, dict)],
            )
        )
    return runs
