"""Publish kill orders on core NATS and wait (bounded) until the agents are final.

Used by the local kill endpoints and by federation (a peer's kill takes the same path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind

from services.gateway.deps import Resources
from shared import subjects, tracing
from shared.bus import FLUSH_WAIT_S, flush
from shared.kill_orders import publish_kill
from shared.lifecycle import AGENT_FINAL
from shared.messages.agents import AgentEvent, AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.kill import KillOrdered

log = logging.getLogger(__name__)

_FINAL = {s.value for s in AGENT_FINAL}
_TRACE_LOOKUP_S = 0.25
"""How long a kill order waits for its agent's trace context before going out without."""
_POLL_S = 0.025
"""How often a kill that waits reads the pending agents' states (one pipelined read)."""


async def kill_and_wait(
    deps: Resources, agent_ids: list[str] | None, order: KillOrdered
) -> dict[str, AgentState]:
    """Kill ``agent_ids`` one by one, or every agent with one ``KILL_ALL`` when it is
    None, and return each one's state once final, or when the gateway's kill wait is over.

    A kill-all goes out before anything is read: which agents it concerns (those a
    spawner held at the order, final since or still live) is worked out after, so the
    order never waits on reading every record.
    """
    nc = deps.broker.connection
    pending: set[str] = set(agent_ids or ())
    done = asyncio.Event()
    final: dict[str, AgentState] = {}
    """Final states seen on the event stream since the order, of any agent."""

    async def on_event(msg: Msg) -> None:
        event = AgentEvent.from_bytes(msg.data)
        if event.kind == "state" and event.state in _FINAL:
            final[event.agent_id] = AgentState(event.state)
            pending.discard(event.agent_id)
            if not pending:
                done.set()

    sub = await nc.subscribe(f"{subjects.EVENTS_PREFIX}.agent.*", cb=on_event)
    try:
        body = order.to_bytes()
        sent_at = utcnow()
        if agent_ids is None:  # under NATS authorization only the admin user may publish it
            await publish_kill(nc, subjects.KILL_ALL, body)
        else:
            for agent_id in agent_ids:
                await _order_kill(deps, agent_id, body)
        await flush(nc, FLUSH_WAIT_S)
        if agent_ids is None:
            states = await _held_at_order(deps, final, sent_at)
            concerned = list(states)
        else:
            concerned = agent_ids
            states = await deps.store.states([a for a in concerned if a not in final])
        for agent_id, state in states.items():  # final before we listened, or still live
            if state in AGENT_FINAL:
                final.setdefault(agent_id, state)
            else:
                pending.add(agent_id)
        pending.difference_update(final)
        await _until_final(deps, pending, final, done, deps.kill_wait_s)
    finally:
        await sub.unsubscribe()
    missing = [a for a in concerned if a not in final]
    final.update(await deps.store.states(missing) if missing else {})
    return {a: final[a] for a in concerned if a in final}


async def _until_final(
    deps: Resources,
    pending: set[str],
    final: dict[str, AgentState],
    done: asyncio.Event,
    wait_s: float,
) -> None:
    """Wait (at most ``wait_s``) until every ``pending`` agent is final: by its event, or
    by its record, read every ``_POLL_S``. The events of a hundred agents killed at once
    reached the gateway up to half a second after their records said ``killed`` (one
    spawner publishing them as its runs unwind); the records are the truth."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while pending and (left := deadline - loop.time()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), min(_POLL_S, left))
        if not pending:
            return
        for agent_id, state in (await deps.store.states(sorted(pending))).items():
            if state in AGENT_FINAL:
                final.setdefault(agent_id, state)
                pending.discard(agent_id)


async def _held_at_order(
    deps: Resources, ended: dict[str, AgentState], sent_at: datetime
) -> dict[str, AgentState]:
    """The agents a kill-all concerns, read after it went out, with their state as read:
    those live and held by a spawner, and those that ended since (their final event
    seen, or, when the record was read before the event arrived, a completion time not
    before the order's). Queued agents (task pending) are not killed: they wait for the
    resume."""
    ids = await deps.store.list_agent_ids(0, 100_000)
    standings = await deps.store.standings([a for a in ids if a not in ended])
    concerned = {a: ended[a] for a in ids if a in ended}
    for agent_id, standing in standings.items():
        if standing.state in AGENT_FINAL:
            if standing.completed_at is not None and standing.completed_at >= sent_at:
                concerned[agent_id] = standing.state
        elif standing.task_state != TaskState.PENDING:
            concerned[agent_id] = standing.state
    return concerned


async def hold_recorded(deps: Resources, wait_s: float, poll_s: float = 0.01) -> bool:
    """Wait (at most ``wait_s``) until the kill-all's hold is in Valkey. The killswitch
    owns the hold and records it when the order reaches it; a kill-all answers only
    once it is there, so a spawn right after the answer is held. False (logged) when
    it never came: no killswitch is running, and nothing holds the queue."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        hold = await deps.store.held()
        if hold is not None and hold.get("kind") == "killall":
            return True
        if asyncio.get_running_loop().time() >= deadline:
            log.error("kill-all: no hold recorded within %.1fs (is the killswitch running?)",
                      wait_s)  # fmt: skip
            return False
        await asyncio.sleep(poll_s)


async def _order_kill(deps: Resources, agent_id: str, body: bytes) -> None:
    """Publish one agent's kill order as a span of the agent's own trace (when it has
    one kept), so the killswitch's work on it joins the task's tree."""
    try:
        traceparent = await asyncio.wait_for(deps.store.agent_trace(agent_id), _TRACE_LOOKUP_S)
    except Exception:  # a kill never waits long on, or fails for, its trace
        traceparent = None
    parent = tracing.parent_from(traceparent)
    with tracing.span("kill", kind=SpanKind.PRODUCER, parent=parent, agent_id=agent_id):
        headers = tracing.inject()
        await deps.broker.connection.publish(
            subjects.kill_agent(agent_id), body, headers=headers or None
        )


async def live_agents(deps: Resources, agent_ids: list[str] | None = None) -> list[str]:
    """The ids (of ``agent_ids``, or of every agent here) not yet final."""
    ids = agent_ids if agent_ids is not None else await deps.store.list_agent_ids(0, 100_000)
    records = await deps.store.get_agents(ids)  # pipelined: one connection
    return [r.agent_id for r in records if r.state not in AGENT_FINAL]
