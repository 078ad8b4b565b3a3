"""What ``mosaic watch`` and ``mosaic agents`` say about queued merges and gate phases."""

from __future__ import annotations

from datetime import UTC, datetime

from mosaic.cli.views import describe as _describe
from mosaic.cli.views import merge_column as _merge
from shared.messages.agents import AgentEvent, AgentRecord, AgentState, TaskState


def _event(kind: str, detail: dict[str, object]) -> AgentEvent:
    return AgentEvent(agent_id="a", task_id="t", kind=kind, detail=detail)


def test_watch_describes_queue_positions_merges_and_gate_phases() -> None:
    assert _describe(_event("progress", {"step": "merge_queue", "position": 3})) == (
        "merge queue #3"
    )
    assert _describe(_event("progress", {"step": "merged", "range": "a1..b2"})) == ("merged a1..b2")
    assert _describe(_event("gate", {"approved": False, "phase": "pre-push"})) == (
        "gates pre-push rejected"
    )
    assert _describe(_event("gate", {"approved": True})) == "gates approved"


def test_agents_merge_column() -> None:
    record = AgentRecord(
        agent_id="a",
        task_id="t",
        agent_type="worker",
        state=AgentState.RUNNING,
        task_state=TaskState.EXECUTING,
        repository="/srv/repo",
        branch="main",
        priority=5,
        gate_profile="minimal",
        created_at=datetime.now(UTC),
    )
    assert _merge(record) == "-"
    assert _merge(record.model_copy(update={"merge_queue_position": 1})) == "queue #1 (merging)"
    assert _merge(record.model_copy(update={"merge_queue_position": 4})) == "queue #4"
    merged = record.model_copy(update={"merged_range": f"{'a' * 40}..{'b' * 40}"})
    assert _merge(merged) == "merged aaaaaaa..bbbbbbb"
