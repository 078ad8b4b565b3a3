"""The state machine tables: every legal transition allowed, every other refused."""

from __future__ import annotations

import itertools

import pytest

from shared.lifecycle import AGENT_FINAL, TASK_FINAL, agent_may, agent_sources, task_may
from shared.messages.agents import AgentState, TaskState

pytestmark = pytest.mark.unit

LEGAL_AGENT = {
    ("spawning", "running"),
    ("spawning", "failed"),
    ("spawning", "killed"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "killed"),
    ("running", "spawning"),
}
LEGAL_TASK = {
    ("pending", "assigned"),
    ("pending", "failed"),
    ("assigned", "executing"),
    ("assigned", "pending"),
    ("assigned", "failed"),
    ("executing", "completed"),
    ("executing", "failed"),
    ("executing", "pending"),
}


@pytest.mark.parametrize(("a", "b"), list(itertools.product(AgentState, AgentState)))
def test_agent_transitions(a: AgentState, b: AgentState) -> None:
    assert agent_may(a, b) == ((a.value, b.value) in LEGAL_AGENT)


@pytest.mark.parametrize(("a", "b"), list(itertools.product(TaskState, TaskState)))
def test_task_transitions(a: TaskState, b: TaskState) -> None:
    assert task_may(a, b) == ((a.value, b.value) in LEGAL_TASK)


def test_final_states_are_the_spec_ones() -> None:
    assert {s.value for s in AGENT_FINAL} == {"completed", "failed", "killed"}
    assert {s.value for s in TASK_FINAL} == {"completed", "failed"}
    assert agent_sources(AgentState.KILLED) == {AgentState.SPAWNING, AgentState.RUNNING}
