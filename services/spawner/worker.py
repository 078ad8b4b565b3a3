"""From a JetStream message to an agent run, and back to ack / nak.

The message stays in flight for the whole run: in-progress acks keep it from being
redelivered while the agent lives; if this process dies, JetStream redelivers it after
the ack wait and the next spawner resumes the task on a fresh worktree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.msg import Msg
from pydantic import ValidationError

from services.spawner.agent_run import AgentRun, RunContext, Verdict
from services.spawner.kills import KillRegistry
from shared.backoff import backoff_delay
from shared.errors import IllegalTransitionError
from shared.lifecycle import AGENT_FINAL, TASK_FINAL
from shared.messages.agents import AgentState, TaskState
from shared.messages.tasks import TaskQueued

log = logging.getLogger(__name__)


class Worker:
    """Handles task messages for one spawner process."""

    def __init__(self, ctx: RunContext, kills: KillRegistry) -> None:
        self.ctx = ctx
        self.kills = kills

    async def handle(self, msg: Msg) -> None:
        """Run the task in ``msg`` and settle the message."""
        try:
            task = TaskQueued.from_bytes(msg.data)
        except ValidationError:
            log.error("dropping a malformed task message")
            await msg.term()
            return
        ids = {"agent_id": task.agent_id, "task_id": task.request.task_id}
        if await self.ctx.tracker.store.held() is not None:
            await msg.nak(delay=1.0)  # a kill-all is in force: the task waits in the queue
            return
        attempt = await self._claim(task)
        if attempt is None:
            await msg.ack()
            return
        current = asyncio.current_task()
        assert current is not None
        running = self.kills.add(task.agent_id, task.request.task_id, current)
        keepalive = asyncio.create_task(self._keepalive(msg))
        try:
            verdict = await AgentRun(self.ctx, task, running, attempt).execute()
        except asyncio.CancelledError:
            verdict = Verdict.HAND_BACK
        finally:
            keepalive.cancel()
            self.kills.discard(task.agent_id)
        with contextlib.suppress(Exception):
            if verdict is Verdict.DONE:
                await msg.ack()
            elif verdict is Verdict.RETRY:
                delay = self._backoff(attempt)
                log.info("retrying in %.1fs", delay, extra=ids)
                await msg.nak(delay=delay)
            else:
                await msg.nak()

    async def _claim(self, task: TaskQueued) -> int | None:
        """Move the task to ``assigned`` here; None when it must not run (final, killed)."""
        store = self.ctx.tracker.store
        record = await store.get_agent(task.agent_id)
        if record is None or record.state in AGENT_FINAL or record.task_state in TASK_FINAL:
            return None
        tracker, tid = self.ctx.tracker, task.request.task_id
        if record.task_state in (TaskState.ASSIGNED, TaskState.EXECUTING):
            # its previous spawner died mid-run: this delivery is a fresh attempt
            agent = AgentState.SPAWNING if record.state == AgentState.RUNNING else None
            try:
                await tracker.transition(
                    task.agent_id,
                    task_id=tid,
                    agent=agent,
                    task=TaskState.PENDING,
                    detail={"retry": "redelivered after its spawner stopped"},
                )
            except IllegalTransitionError:
                return None
        attempt = record.attempts + 1
        try:
            await tracker.transition(
                task.agent_id,
                task_id=tid,
                task=TaskState.ASSIGNED,
                fields={"spawner": self.ctx.instance, "attempts": attempt},
            )
        except IllegalTransitionError:
            return None  # killed or taken meanwhile
        return attempt

    async def _keepalive(self, msg: Msg) -> None:
        interval = max(self.ctx.settings.task_ack_wait_s / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    def _backoff(self, attempt: int) -> float:
        s = self.ctx.settings
        return backoff_delay(attempt, base=s.retry_base_delay_s, cap=s.retry_max_delay_s)
