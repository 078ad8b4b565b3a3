"""Which agents this spawner runs, so a kill order can cancel them at once."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from shared.messages.kill import KillOrdered
from shared.sandbox.base import Sandbox
from shared.tracker import AttemptTracker

log = logging.getLogger(__name__)


@dataclass
class Running:
    """One live agent: the asyncio task running it and the kill order, once given."""

    agent_id: str
    task_id: str
    task: asyncio.Task[None]
    order: KillOrdered | None = None
    ordered_at: float | None = None
    """``time.monotonic()`` when the kill order arrived (kill latency starts here)."""
    scope: str = "agent"
    """``agent`` for a kill of this agent, ``all`` for a kill-all."""
    sandbox: Sandbox | None = None
    """The agent's sandbox once it is open: a kill order stops it at once (``kill_now``),
    before the run's task even wakes to its cancellation."""
    tracker: AttemptTracker | None = None
    """The attempt's fenced tracker once its run began: a kill-all writes the agent's
    ``killed`` record through it (``killrecords``)."""
    recorded: asyncio.Future[bool | None] | None = None
    """A kill-all's writer took this agent's record: True written, False refused (the
    agent had ended otherwise), None not written (the run writes its own)."""
    lease_lost: bool = False
    """This spawner lost NATS for longer than its lease: the task may run elsewhere now,
    so the run kills its sandbox and writes nothing more (``services.spawner.lease``)."""


@dataclass
class KillRegistry:
    """Live agents of this process, by id."""

    agents: dict[str, Running] = field(default_factory=dict)
    halted: bool = False
    """A kill-all is in force: an agent claimed now is handed back to the queue at once."""

    def add(self, agent_id: str, task_id: str, task: asyncio.Task[None]) -> Running:
        """Track an agent from the moment it is assigned here.

        Under a kill-all (a task claimed just as the order arrived) the task is cancelled
        without an order, so its run hands it back to the queue instead of running it.
        """
        running = Running(agent_id, task_id, task)
        self.agents[agent_id] = running
        if self.halted:
            task.cancel("kill-all in force: back to the queue")
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
        running.ordered_at = time.monotonic()
        if running.sandbox is not None:
            try:
                running.sandbox.kill_now()
            except Exception:  # the run's own kill, next, reports it
                log.warning("early sandbox kill failed", exc_info=True,
                            extra={"agent_id": agent_id})  # fmt: skip
        running.task.cancel(f"killed: {order.reason or 'no reason given'}")
        return True

    def kill_all(self, order: KillOrdered) -> list[str]:
        """Cancel every agent running here; hand back any claimed until ``resume``."""
        self.halted = True
        killed = [a for a in list(self.agents) if self.kill(a, order)]
        for agent_id in killed:
            self.agents[agent_id].scope = "all"
        return killed

    def resume(self) -> None:
        """The kill-all is lifted: claimed tasks run again."""
        self.halted = False
