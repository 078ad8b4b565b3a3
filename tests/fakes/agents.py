"""Helpers to build agent specs and collect progress in tests."""

from __future__ import annotations

from typing import Any

from services.spawner.runtime.types import AgentSpec
from shared.messages.tasks import SpawnAgentRequest


def make_spec(
    agent_type: str = "worker",
    *,
    plan: list[dict[str, Any]] | None = None,
    work_items: list[str] | None = None,
    task_id: str = "task-1",
    agent_id: str = "agent-1",
) -> AgentSpec:
    """A spec for ``agent_type`` with an optional scripted plan."""
    request = SpawnAgentRequest.model_validate(
        {
            "taskId": task_id,
            "agentType": agent_type,
            "context": {
                "repository": "/srv/repos/demo",
                "branch": "main",
                "workItems": work_items or ["make add() handle three numbers"],
                "skills": ["python"],
            },
            "options": {"plan": plan} if plan is not None else {},
        }
    )
    return AgentSpec(agent_id=agent_id, request=request)


class Progress:
    """A ``ProgressSink`` that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, detail: dict[str, Any]) -> None:
        self.events.append((kind, detail))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [detail for k, detail in self.events if k == kind]
