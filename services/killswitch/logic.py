"""What the killswitch does itself: end agents that no spawner holds yet.

A queued agent (``spawning`` with its task ``pending``) has no process to stop, so the
killswitch marks it ``killed`` directly; when a spawner later pulls its message it sees
a final state and drops it. Agents a spawner holds are stopped by that spawner.
"""

from __future__ import annotations

import logging

from shared.errors import IllegalTransitionError
from shared.lifecycle import AGENT_FINAL
from shared.messages.agents import AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.kill import KillOrdered
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


async def kill_if_queued(tracker: AgentTracker, agent_id: str, order: KillOrdered) -> bool:
    """Mark a not-yet-claimed agent killed; True if this call ended it."""
    record = await tracker.store.get_agent(agent_id)
    if record is None or record.state in AGENT_FINAL or record.task_state != TaskState.PENDING:
        return False
    reason = order.reason or "no reason given"
    try:
        await tracker.transition(
            agent_id,
            task_id=record.task_id,
            agent=AgentState.KILLED,
            task=TaskState.FAILED,
            fields={"completed_at": utcnow(), "error": f"killed: {reason}"},
            detail={"reason": reason, "requestedBy": order.requested_by, "by": "killswitch"},
        )
    except IllegalTransitionError:
        return False  # a spawner claimed it meanwhile and will kill it itself
    return True


async def hold_all(tracker: AgentTracker, order: KillOrdered) -> None:
    """Record the kill-all so no queued task starts until an admin resumes.

    Queued agents are not killed: they stay queued, not lost, and run after resume.
    Running agents are killed by the spawners that hold them.
    """
    await tracker.store.hold_all(order.reason, order.requested_by)
