"""Which agents this spawner runs, so a kill order can cancel them at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from shared.messages.kill import KillOrdered


@dataclass
class Running:
    """One live agent: the asyncio task running it and the kill order, once given."""

    agent_id: str
    task_id: str
    task: asyncio.Task[None]
    order: KillOrdered | None = None


@dataclass
class KillRegistry:
    """Live agents of this process, by id."""

    agents: dict[str, Running] = field(default_factory=dict)

    def add(self, agent_id: str, task_id: str, task: asyncio.Task[None]) -> Running:
        """Track an agent from the moment it is assigned here."""
        running = Running(agent_id, task_id, task)
        self.agents[agent_id] = running
        return running

    def discard(self, agent_id: str) -> None:
        """Forget an agent that has ended."""
        self.agents.pop(agent_id, None)

    def kill(self, agent_id: str, order: KillOrdered) -> bool:
        """Cancel the agent's task if it runs here; True when it did."""
        running = self.agents.get(agent_id)
        if running is None or running.order is not None:
            return running is not None
        running.order = order
        running.task.cancel(f"killed: {order.reason or 'no reason given'}")
        return True

    def kill_all(self, order: KillOrdered) -> list[str]:
        """Cancel every agent running here."""
        return [a for a in list(self.agents) if self.kill(a, order)]
