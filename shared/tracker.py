"""Agent state changes as one step: atomic transition in Valkey, then the event on NATS.

Whoever moves an agent (gateway, spawner, killswitch) goes through ``AgentTracker`` so
the history list, the record and the live feed never disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faststream.nats import NatsBroker

from shared import subjects
from shared.messages.agents import AgentEvent, AgentState, EventKind, TaskState
from shared.store import StateStore

log = logging.getLogger(__name__)


class AgentTracker:
    """Transitions, progress and cleanup events for agents, persisted then published."""

    def __init__(
        self,
        store: StateStore,
        broker: NatsBroker,
        publish: Callable[[AgentEvent], Awaitable[None]] | None = None,
    ) -> None:
        """``publish`` replaces the NATS publish: the gateway may not publish
        ``mosaic.events.>`` (only the spawner and killswitch may), so it hands its events
        to its own live feed; other gateways read them from the Valkey history."""
        self.store = store
        self._broker = broker
        self._local = publish

    async def transition(
        self,
        agent_id: str,
        *,
        task_id: str,
        agent: AgentState | None = None,
        task: TaskState | None = None,
        fields: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AgentEvent:
        """Atomically move state (raises ``IllegalTransitionError`` if not allowed)."""
        event = await self.store.transition(
            agent_id, task_id=task_id, agent=agent, task=task, fields=fields, detail=detail
        )
        await self._publish(event)
        log.info(
            "agent %s: %s -> %s",
            agent_id,
            event.previous,
            event.state,
            extra={"agent_id": agent_id, "task_id": task_id},
        )
        return event

    async def record(
        self,
        agent_id: str,
        task_id: str,
        kind: EventKind,
        detail: Mapping[str, Any],
        state: str | None = None,
    ) -> AgentEvent:
        """Append an event that is not a transition (creation, progress, gate, cleanup)."""
        event = await self.store.append_event(
            AgentEvent(
                agent_id=agent_id, task_id=task_id, kind=kind, state=state, detail=dict(detail)
            )
        )
        await self._publish(event)
        return event

    async def announce(self, event: AgentEvent) -> None:
        """Tell the live feed about an event already stored (never raises)."""
        await self._publish(event)

    async def _publish(self, event: AgentEvent) -> None:
        try:
            if self._local is not None:
                await self._local(event)
                return
            await self._broker.publish(event.to_bytes(), subjects.agent_events(event.agent_id))
        except Exception:  # the history in Valkey is the source of truth
            log.warning("could not publish event for %s", event.agent_id, exc_info=True)
