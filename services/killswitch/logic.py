"""What the killswitch does on a kill order, so a kill works even without the spawner.

Order of events for one agent:

1. An agent no spawner holds yet (task ``pending``) is marked ``killed`` at once; the
   spawner that later pulls its message sees a final state and drops it.
2. Otherwise its spawner is expected to end it (it got the same order): the killswitch
   waits up to ``kill_grace_s`` for a final state.
3. If none comes (spawner dead or hung), the killswitch removes the agent's containers
   by label and SIGKILLs its recorded process groups, then moves it to ``killed``
   (atomic; losing the race to the spawner is fine), then cleans up: worktree removed
   by gitops (unpushed work salvaged first), live keys cleared, a ``cleanup`` event.

Kill-all first records the hold (no queued task starts until resume), then does 2-3
for every agent a spawner holds. Queued agents stay queued.

Every host runs a killswitch (``MOSAIC_HOST_ID``), and every host's killswitch gets each
order (queue group per host): it ends only the agents its host runs (``record.host``),
where their sandboxes and worktrees are, and leaves the others (``elsewhere``) to theirs.
Queued agents (no host yet) are marked by whichever killswitch is first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from services.killswitch.settings import KillswitchSettings
from services.killswitch.stopper import Stopped, Stopper
from shared.errors import IllegalTransitionError
from shared.kill_metrics import KILL_LATENCY, KILLS
from shared.lifecycle import AGENT_FINAL
from shared.messages.agents import AgentRecord, AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.gitops import WorktreeRemoveRequested
from shared.messages.kill import KillOrdered
from shared.tracker import AgentTracker
from shared.worktrees import RemoveWorktree, retire_worktree

log = logging.getLogger(__name__)

_HELD_TASK_STATES = frozenset({TaskState.ASSIGNED, TaskState.EXECUTING})


@dataclass(frozen=True)
class Outcome:
    """How one agent ended after a kill order.

    ``by``: ``spawner`` (its spawner ended it), ``killswitch`` (this service did),
    ``already`` (final before the order), ``unknown`` (no such agent),
    ``other`` (it reached another final state first, such as ``completed``),
    ``requeued`` (a kill-all found it handed back to the queue, where it waits),
    ``elsewhere`` (another host runs it, or another host's killswitch marked it while it
    was queued: that killswitch answers and audits).
    """

    agent_id: str
    state: AgentState | None
    by: str
    elapsed_s: float

    @property
    def killed(self) -> bool:
        """Whether the agent ended ``killed`` because of this order."""
        return self.state == AgentState.KILLED and self.by in ("spawner", "killswitch")


class Killswitch:
    """Kills agents whatever state their spawners are in."""

    def __init__(
        self,
        tracker: AgentTracker,
        stopper: Stopper,
        remove_worktree: RemoveWorktree,
        settings: KillswitchSettings,
        host: str,
    ) -> None:
        self.host = host
        """This killswitch's host: it ends the agents running here, no others."""
        self.tracker = tracker
        self.store = tracker.store
        self.stopper = stopper
        self._remove_worktree = remove_worktree
        self.settings = settings
        self._limit = asyncio.Semaphore(settings.kill_concurrency)

    async def kill_one(self, agent_id: str, order: KillOrdered, received: float) -> Outcome:
        """Make sure ``agent_id`` ends ``killed`` (see the module docstring)."""
        record = await self.store.get_agent(agent_id)
        if record is None:
            return Outcome(agent_id, None, "unknown", time.monotonic() - received)
        if record.state in AGENT_FINAL:
            return Outcome(agent_id, record.state, "already", time.monotonic() - received)
        if record.task_state == TaskState.PENDING:
            if await self._kill_queued(record, order):
                return self._done(agent_id, AgentState.KILLED, "killswitch", received, "agent")
            record = await self.store.get_agent(agent_id) or record  # claimed meanwhile
            if record.state in AGENT_FINAL:  # another host's killswitch marked it first
                return Outcome(agent_id, record.state, "elsewhere", time.monotonic() - received)
        if not self.runs_here(record):
            return Outcome(agent_id, record.state, "elsewhere", time.monotonic() - received)
        final = await self._wait_final([agent_id], self.settings.kill_grace_s)
        if agent_id in final:
            by = "spawner" if final[agent_id] == AgentState.KILLED else "other"
            return self._done(agent_id, final[agent_id], by, received, "agent")
        return await self._end(record, order, received, "agent")

    async def kill_all(self, order: KillOrdered, received: float) -> list[Outcome]:
        """Hold the queue, then make sure every agent a spawner holds ends ``killed``."""
        await self.store.hold_all(order.reason, order.requested_by)
        held = await self.held_agents()
        if not held:
            return []
        final = await self._wait_final([r.agent_id for r in held], self.settings.kill_grace_s)
        outcomes = [
            self._done(
                r.agent_id,
                final[r.agent_id],
                "spawner" if final[r.agent_id] == AgentState.KILLED else "other",
                received,
                "all",
            )
            for r in held
            if r.agent_id in final
        ]
        stragglers = [r for r in held if r.agent_id not in final]
        if stragglers:
            log.warning(
                "kill-all: %d agent(s) not ended by their spawner within %.1fs; ending them here",
                len(stragglers),
                self.settings.kill_grace_s,
            )
            outcomes += await asyncio.gather(
                *(self._end(r, order, received, "all") for r in stragglers)
            )
        return outcomes

    async def held_agents(self) -> list[AgentRecord]:
        """Live agents whose task a spawner has claimed (``assigned`` or ``executing``)."""
        records = await self.records(await self.store.list_agent_ids(0, 10_000_000))
        return [
            r
            for r in records
            if r.state not in AGENT_FINAL
            and r.task_state in _HELD_TASK_STATES
            and self.runs_here(r)
        ]

    def runs_here(self, record: AgentRecord) -> bool:
        """Whether the agent's task was taken on this host (a record from before hosts
        were recorded names none: every host's killswitch looks after it)."""
        return record.host is None or record.host == self.host

    async def records(self, agent_ids: Iterable[str]) -> list[AgentRecord]:
        """The records of ``agent_ids`` that exist (pipelined reads)."""
        return await self.store.get_agents(list(agent_ids))

    async def _kill_queued(self, record: AgentRecord, order: KillOrdered) -> bool:
        reason = order.reason or "no reason given"
        try:
            await self.tracker.transition(
                record.agent_id,
                task_id=record.task_id,
                agent=AgentState.KILLED,
                task=TaskState.FAILED,
                fields={"completed_at": utcnow(), "error": f"killed: {reason}"},
                detail={"reason": reason, "requestedBy": order.requested_by, "by": "killswitch"},
            )
        except IllegalTransitionError:
            return False  # a spawner claimed it meanwhile and kills it itself
        return True

    async def _wait_final(self, agent_ids: list[str], grace: float) -> dict[str, AgentState]:
        """Poll the agents' states until all are final or ``grace`` is over."""
        deadline = time.monotonic() + grace
        pending = list(agent_ids)
        final: dict[str, AgentState] = {}
        while pending:
            states = await self.store.states(pending)
            still: list[str] = []
            for agent_id in pending:
                state = states.get(agent_id)
                if state in AGENT_FINAL:
                    final[agent_id] = state
                elif state is not None:  # None: deleted meanwhile, nothing to kill
                    still.append(agent_id)
            pending = still
            if not pending or time.monotonic() >= deadline:
                break
            await asyncio.sleep(self.settings.kill_poll_s)
        return final

    async def _end(
        self, record: AgentRecord, order: KillOrdered, received: float, scope: str
    ) -> Outcome:
        """End an agent its spawner did not: stop its sandbox, mark it, clean up."""
        agent_id = record.agent_id
        extra = {"agent_id": agent_id, "task_id": record.task_id}
        async with self._limit:
            if scope == "all":
                now = await self.store.get_agent(agent_id)
                if now is None or now.task_state == TaskState.PENDING:
                    # handed back to the queue by its spawner: it waits for resume
                    return Outcome(agent_id, now.state if now else None, "requeued", 0.0)
            stopped = await self.stopper.stop(agent_id)
            reason = order.reason or "no reason given"
            try:
                await self.tracker.transition(
                    agent_id,
                    task_id=record.task_id,
                    agent=AgentState.KILLED,
                    task=TaskState.FAILED,
                    fields={"completed_at": utcnow(), "error": f"killed: {reason}"},
                    detail={
                        "reason": reason,
                        "requestedBy": order.requested_by,
                        "by": "killswitch",
                        "spawner": record.spawner,
                        "containers": stopped.containers,
                        "processGroups": stopped.process_groups,
                    },
                )
            except IllegalTransitionError:
                current = await self.store.get_agent(agent_id)
                state = current.state if current else None
                by = "spawner" if state == AgentState.KILLED else "other"
                return self._done(agent_id, state, by, received, scope)
            log.warning(
                "killed without its spawner (%s): %d container(s), %d process group(s)",
                record.spawner,
                stopped.containers,
                stopped.process_groups,
                extra=extra,
            )
            outcome = self._done(agent_id, AgentState.KILLED, "killswitch", received, scope)
        await self.cleanup(record, stopped)
        return outcome

    async def cleanup(self, record: AgentRecord, stopped: Stopped | None = None) -> None:
        """What a spawner's own cleanup would do: worktree, live keys, a ``cleanup`` event."""
        agent_id = record.agent_id
        detail: dict[str, object] = {"by": "killswitch"}
        if stopped is not None and stopped.containers:
            detail["sandbox"] = "removed"
        await self.stopper.groups.clear(agent_id)
        if record.worktree or record.task_state in _HELD_TASK_STATES:
            retired = await retire_worktree(
                self._remove_worktree,
                WorktreeRemoveRequested(
                    agent_id=agent_id,
                    task_id=record.task_id,
                    repository=record.repository,
                    base_branch=record.branch,
                ),
            )
            if retired is not None:
                detail |= retired.detail
                await self.store.update(agent_id, retired.patch)
        await self.tracker.record(agent_id, record.task_id, "cleanup", detail)

    def _done(
        self, agent_id: str, state: AgentState | None, by: str, received: float, scope: str
    ) -> Outcome:
        elapsed = time.monotonic() - received
        if state == AgentState.KILLED and by in ("spawner", "killswitch"):
            KILL_LATENCY.labels("killswitch", by, scope).observe(elapsed)
            KILLS.labels("killswitch", by, scope).inc()
        return Outcome(agent_id, state, by, elapsed)
