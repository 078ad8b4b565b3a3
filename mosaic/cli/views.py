"""How agents and their events read on a terminal (tables, one-line descriptions)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mosaic.cli.common import table

if TYPE_CHECKING:
    from shared.messages.agents import AgentEvent, AgentRecord


def agent_rows(agents: Iterable[AgentRecord]) -> list[list[str]]:
    return [
        [
            a.agent_id,
            a.state.value,
            a.task_state.value,
            a.task_id,
            str(a.turns),
            str(a.tokens_used),
            a.last_tool or "-",
            sandbox_column(a),
            a.host or "-",
            a.model or a.provider or "-",
            merge_column(a),
            a.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        ]
        for a in agents
    ]


def merge_column(agent: AgentRecord) -> str:
    """Its place in the merge queue while it waits, the range it merged after."""
    if agent.merge_queue_position is not None:
        if agent.merge_queue_position == 1:
            return "queue #1 (merging)"
        return f"queue #{agent.merge_queue_position}"
    if agent.merged_range:
        old, _, new = agent.merged_range.partition("..")
        return f"merged {old[:7]}..{new[:7]}"
    return "-"


def sandbox_column(agent: AgentRecord) -> str:
    if agent.sandbox is None:
        return "-"
    return f"{agent.sandbox} (UNSAFE)" if agent.unsafe else agent.sandbox


AGENT_HEADER = [
    "AGENT",
    "STATE",
    "TASK STATE",
    "TASK",
    "TURNS",
    "TOKENS",
    "LAST TOOL",
    "SANDBOX",
    "HOST",
    "MODEL",
    "MERGE",
    "CREATED",
]


def progress_fields(detail: dict[str, Any]) -> dict[str, Any]:
    step = detail.get("step")
    if step == "turn_started":
        return {"turns": int(detail.get("turn", 0))}
    if step == "tool_called":
        return {"last_tool": str(detail.get("tool"))}
    if step == "tokens_used":
        return {"tokens_used": int(detail.get("total", 0))}
    return {}


def describe(event: AgentEvent) -> str:
    detail = event.detail
    if event.kind in ("state", "task_state"):
        what = "agent" if event.kind == "state" else "task"
        arrow = f"{event.previous} -> " if event.previous else ""
        why = detail.get("error") or detail.get("reason") or ""
        return f"{what} {arrow}{event.state}" + (f" ({why})" if why else "")
    if event.kind == "progress":
        step = str(detail.get("step", "progress"))
        if step == "merge_queue":
            return f"merge queue #{detail.get('position')}"
        if step == "merged":
            return f"merged {detail.get('range')}"
        extra = detail.get("tool") or detail.get("turn") or detail.get("total") or ""
        return f"{step} {extra}".strip()
    if event.kind == "gate":
        phase = f"{detail['phase']} " if detail.get("phase") else ""
        return f"gates {phase}{'approved' if detail.get('approved') else 'rejected'}"
    if event.kind == "overlap":  # the conflict forecast (docs/git.md)
        files = "; ".join(str(f) for f in detail.get("files", []))
        return f"overlaps {detail.get('agentId')} ({detail.get('branch')}): {files}"
    return event.kind


def draw(agents: dict[str, AgentRecord], footer: str) -> None:
    ordered = sorted(agents.values(), key=lambda a: a.created_at, reverse=True)
    body = table(agent_rows(ordered), AGENT_HEADER) if ordered else "no live agents"
    sys.stdout.write("\x1b[H\x1b[2J" + "mosaic watch (Ctrl-C to stop)\n\n" + body)
    sys.stdout.write(f"\n\n{footer}\n")
    sys.stdout.flush()
