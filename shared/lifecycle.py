"""The task and agent state machines (DESIGN.md, "Lifecycles").

Only the tables live here; the atomic check-and-set that enforces them runs in Valkey
(``shared.store``), so two racing transitions have exactly one winner.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.messages.agents import AgentState, TaskState

AGENT_TRANSITIONS: Mapping[AgentState, frozenset[AgentState]] = {
    AgentState.SPAWNING: frozenset({AgentState.RUNNING, AgentState.FAILED, AgentState.KILLED}),
    AgentState.RUNNING: frozenset(
        {AgentState.COMPLETED, AgentState.FAILED, AgentState.KILLED, AgentState.SPAWNING}
    ),
    AgentState.COMPLETED: frozenset(),
    AgentState.FAILED: frozenset(),
    AgentState.KILLED: frozenset(),
}
"""``running → spawning`` is a retry of the same agent on a fresh attempt."""

TASK_TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset({TaskState.ASSIGNED, TaskState.FAILED}),
    TaskState.ASSIGNED: frozenset({TaskState.EXECUTING, TaskState.PENDING, TaskState.FAILED}),
    TaskState.EXECUTING: frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.PENDING}),
    TaskState.COMPLETED: frozenset(),
    TaskState.FAILED: frozenset(),
}
"""A retry sends a task back to ``pending``; ``completed`` and ``failed`` are final."""

AGENT_FINAL = frozenset(s for s, nxt in AGENT_TRANSITIONS.items() if not nxt)
TASK_FINAL = frozenset(s for s, nxt in TASK_TRANSITIONS.items() if not nxt)


def agent_sources(target: AgentState) -> frozenset[AgentState]:
    """The agent states from which ``target`` may be reached."""
    return frozenset(s for s, nxt in AGENT_TRANSITIONS.items() if target in nxt)


def task_sources(target: TaskState) -> frozenset[TaskState]:
    """The task states from which ``target`` may be reached."""
    return frozenset(s for s, nxt in TASK_TRANSITIONS.items() if target in nxt)


def agent_may(current: AgentState, target: AgentState) -> bool:
    """Whether the agent machine allows ``current → target``."""
    return target in AGENT_TRANSITIONS[current]


def task_may(current: TaskState, target: TaskState) -> bool:
    """Whether the task machine allows ``current → target``."""
    return target in TASK_TRANSITIONS[current]
