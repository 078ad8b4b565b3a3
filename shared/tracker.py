"""Agent state changes as one step: atomic transition in Valkey, then the event on NATS.

Whoever moves an agent (gateway, spawner, killswitch) goes through ``AgentTracker`` so
the history list, the record and the live feed never disagree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from faststream.nats import NatsBroker

from shared import subjects
from shared.errors import MosaicError
from shared.messages.agents import AgentEvent, AgentPatch, AgentState, EventKind, TaskState
from shared.store import StateStore, Transition
from shared.tracing import current_trace_id

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
        fence: int | None = None,
        append: Mapping[str, str] | None = None,
    ) -> AgentEvent:
        """Atomically move state (raises ``IllegalTransitionError`` if not allowed, and
        ``StaleAttemptError`` if ``fence`` is an attempt older than the record's)."""
        move = Transition(agent_id, task_id, agent, task, fields, detail, fence, append)
        return await self.write(move)

    async def write(self, move: Transition) -> AgentEvent:
        """``transition``, of a move made as a value."""
        event = await self.store.write(move)
        await self._publish(event)
        log.info(
            "agent %s: %s -> %s",
            move.agent_id,
            event.previous,
            event.state,
            extra={"agent_id": move.agent_id, "task_id": move.task_id},
        )
        return event

    async def transition_many(self, moves: Sequence[Transition]) -> list[AgentEvent | MosaicError]:
        """``moves`` written in one round trip (``StateStore.transition_many``), then the
        event of each that was made published; each answers its event or its refusal."""
        outcomes = await self.store.transition_many(moves)
        made = [o for o in outcomes if isinstance(o, AgentEvent)]
        for event in made:
            await self._publish(event)
        log.info("%d of %d agents moved together: -> %s", len(made), len(moves),
                 ", ".join(sorted({str(e.state) for e in made})) or "none")  # fmt: skip
        return outcomes

    async def record(
        self,
        agent_id: str,
        task_id: str,
        kind: EventKind,
        detail: Mapping[str, Any],
        state: str | None = None,
        fence: int | None = None,
    ) -> AgentEvent:
        """Append an event that is not a transition (creation, progress, gate, cleanup)."""
        event = await self.store.append_event(
            AgentEvent(
                agent_id=agent_id,
                task_id=task_id,
                kind=kind,
                state=state,
                detail=dict(detail),
                trace_id=current_trace_id(),
            ),
            fence=fence,
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


def raise_if_cancelled() -> None:
    """Re-raise a cancellation a library swallowed. redis-py (8.1) can return normally
    from a command when the task was cancelled during it; an attempt that carried on
    would lose a kill or a shutdown. Code that handles a cancellation on purpose calls
    ``Task.uncancel()`` first (``AgentRun.execute``)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError("cancelled during a state write")


class AttemptTracker:
    """The tracker as one attempt writes through it: every write carries the attempt's
    number as its fencing token, so a spawner that lost the task changes nothing."""

    def __init__(self, tracker: AgentTracker, agent_id: str, task_id: str, attempt: int) -> None:
        self.tracker = tracker
        self.store = tracker.store
        self.agent_id = agent_id
        self.task_id = task_id
        self.attempt = attempt
        self.trace_id = current_trace_id()
        """The attempt's trace (made inside it): a move written elsewhere (a kill-all's
        records, written together) still carries it."""

    async def transition(
        self,
        *,
        agent: AgentState | None = None,
        task: TaskState | None = None,
        fields: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> AgentEvent:
        """A fenced transition; ``reason`` is appended to the record's attempt reasons."""
        return await self.write(
            self.move(agent=agent, task=task, fields=fields, detail=detail, reason=reason)
        )

    async def write(self, move: Transition) -> AgentEvent:
        """Write one move (made by ``move``, so fenced with this attempt)."""
        event = await self.tracker.write(move)
        raise_if_cancelled()
        return event

    def move(
        self,
        *,
        agent: AgentState | None = None,
        task: TaskState | None = None,
        fields: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> Transition:
        """The fenced transition ``transition`` makes, as a value (to write with others)."""
        append = {"attempt_reasons": reason} if reason is not None else None
        return Transition(
            self.agent_id,
            self.task_id,
            agent,
            task,
            fields,
            detail,
            self.attempt,
            append,
            self.trace_id or current_trace_id(),
        )

    async def record(self, kind: EventKind, detail: Mapping[str, Any]) -> AgentEvent:
        """A fenced event in the history (progress, gate, cleanup)."""
        event = await self.tracker.record(
            self.agent_id, self.task_id, kind, detail, fence=self.attempt
        )
        raise_if_cancelled()
        return event

    async def update(self, patch: AgentPatch) -> None:
        """A fenced write of non-state fields."""
        await self.store.update(self.agent_id, patch, fence=self.attempt)
        raise_if_cancelled()
