"""A kill-all's ``killed`` records, written together.

One by one, each of a hundred runs wrote its own record as it unwound, between its
neighbours' unwinding (their commands reaped, their spans, their worktree
retirements): a kill-all of 100 bwrap agents had its sandboxes gone 0.17 s after the
order and its last record written 0.8 s after it. Here the order's callback hands every
agent whose sandbox it stopped to one writer, which waits for those sandboxes' kills,
writes all their records in one pipelined round trip and publishes their events. Each
run waits for its agent's answer (``endings.killed``) before unwinding further, so the
records go first and the rest follows.
"""

from __future__ import annotations

import asyncio
import logging

from services.spawner.endings import killed_move
from services.spawner.kills import Running
from shared.messages.agents import AgentEvent
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


def write_together(tracker: AgentTracker, runs: list[Running]) -> asyncio.Task[None] | None:
    """Take the ``killed`` records of ``runs`` (those with a sandbox and a tracker; the
    rest write their own, and a run that lost its lease writes nothing) and start
    writing them; call it right after the order's ``kill_all``, before any run can
    wake. None when there is none to take."""
    taken = [
        r for r in runs if r.sandbox is not None and r.tracker is not None and not r.lease_lost
    ]
    if not taken:
        return None
    loop = asyncio.get_running_loop()
    for run in taken:
        run.recorded = loop.create_future()
    return asyncio.create_task(_write(tracker, taken), name="kill-all records")


async def _write(tracker: AgentTracker, runs: list[Running]) -> None:
    outcomes: list[bool | None] = [None] * len(runs)
    try:
        # the record says killed once the sandbox is stopped (docker: its kill answered)
        await asyncio.gather(*(_stop(r) for r in runs))
        moves = [killed_move(r.tracker, r) for r in runs if r.tracker is not None]
        written = await tracker.transition_many(moves)
        outcomes = [isinstance(w, AgentEvent) for w in written]
    except Exception:  # Valkey away: each run writes its own record, as it would alone
        log.warning("kill-all: the records could not be written together", exc_info=True)
    finally:
        for run, outcome in zip(runs, outcomes, strict=True):
            if run.recorded is not None and not run.recorded.done():
                run.recorded.set_result(outcome)


async def _stop(run: Running) -> None:
    if run.sandbox is not None:
        try:
            await run.sandbox.kill()
        except Exception:  # the run's own kill, after, reports it
            log.warning("sandbox kill failed", exc_info=True, extra={"agent_id": run.agent_id})
