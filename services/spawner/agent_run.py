"""One attempt of one agent, as a workflow: its steps in order, then one ending.

    open worktree -> prepare environment -> open sandbox -> mark running
      -> model loop (its finish check: ``finishing.Finish``, answered by ``FinishPolicy``)
      -> retire (sandbox closed, worktree salvaged and removed) -> record the ending

Every way out ends in a final state, a retry or a hand-back (``endings``), and retires
what the attempt opened exactly once (``retirement``); an attempt that lost its task
abandons instead and writes nothing. Each step names its retry policy beside its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError

from services.spawner import endings
from services.spawner.attempt import Attempt
from services.spawner.errors import store_unavailable
from services.spawner.finish_policy import Accept
from services.spawner.finishing import Finish
from services.spawner.kills import Running
from services.spawner.progress import Progress
from services.spawner.retirement import Retirement
from services.spawner.run_context import RunContext
from services.spawner.runtime.loop import run_agent
from services.spawner.runtime.providers import make_provider
from services.spawner.runtime.types import AgentOutcome, AgentSpec, Bounds
from services.spawner.spending import SpendMeter
from services.spawner.workspace import (
    mark_running,
    open_sandbox,
    open_worktree,
    place_warm_sandbox,
    prepare_environment,
    record_warm_start,
    release_warm_sandbox,
    sandbox_spec,
)
from shared.errors import MosaicError, is_stale
from shared.messages.tasks import TaskQueued

__all__ = ["AgentRun", "RunContext", "Verdict"]

Verdict = endings.Verdict

log = logging.getLogger(__name__)


class AgentRun:
    """Runs one attempt; ``execute`` returns what to do with the queue message."""

    def __init__(self, ctx: RunContext, task: TaskQueued, running: Running, attempt: int) -> None:
        self.ctx = ctx
        self.running = running
        self.attempt = Attempt.of(ctx.tracker, task, attempt)
        running.tracker = self.attempt.tracker
        self.agent_id = task.agent_id
        self.task_id = task.request.task_id
        self._meter = SpendMeter(
            ctx.spending, self.attempt.tracker, task.request, ctx.model.model_name() or "unknown"
        )
        self._progress = Progress(self.attempt, running)
        self._retirement = Retirement(ctx, self.attempt)
        self._finish: Finish | None = None
        self._started = False  # the sandbox was created: this attempt did work

    async def execute(self) -> Verdict:
        """Run to an ending; never leaves the sandbox or worktree behind."""
        attempt = self.attempt
        try:
            outcome = await self._steps()
            await self._retirement.retire()  # a final state means the worktree is gone
            return await endings.outcome(attempt, outcome, self._accepted())
        except asyncio.CancelledError:
            _handled_cancellation()  # the writes below must not see it again
            failure = self._failure()
            if self.running.lease_lost or (failure is not None and is_stale(failure)):
                return await self._lost()
            if self.running.order is None:  # shutdown, not a kill: give the task back
                # Retire first: once the attempt number is given back, the next claim
                # reuses it, and this attempt's late worktree removal would pass the
                # gitops fence and remove the new attempt's worktree.
                await self._retirement.retire()
                await endings.hand_back(attempt, self._started)
                return Verdict.HAND_BACK
            await self._killed()
            return Verdict.DONE
        except (MosaicError, RedisError) as exc:
            if is_stale(exc):
                return await self._lost()
            error = store_unavailable(exc) if isinstance(exc, RedisError) else exc
            await self._retirement.retire()
            verdict = await endings.failure(attempt, error)
            return await self._lost() if verdict is Verdict.LOST else verdict
        finally:
            await asyncio.shield(self._retirement.retire())  # done already on most paths

    async def _steps(self) -> AgentOutcome:
        """The attempt's steps, in order, up to the end of the model loop."""
        ctx, attempt, retirement = self.ctx, self.attempt, self._retirement
        retirement.worktree_asked = True  # removed even if the answer never comes
        try:
            await place_warm_sandbox(ctx, attempt)
            worktree = await open_worktree(ctx, attempt)
            environment = await prepare_environment(ctx, attempt, worktree)
            spec = sandbox_spec(ctx, attempt, worktree, environment)
            began = time.perf_counter()
            sandbox = await open_sandbox(ctx, spec)
            retirement.sandbox = self.running.sandbox = sandbox
        finally:
            release_warm_sandbox(ctx, attempt)
        await record_warm_start(ctx, attempt, sandbox, time.perf_counter() - began)
        self._started = True
        await mark_running(ctx, attempt, worktree, sandbox, spec, environment)
        self._finish = Finish(ctx, attempt, worktree, sandbox, environment, self._meter)
        agent = AgentSpec(agent_id=attempt.agent_id, request=attempt.request)
        outcome = await run_agent(
            agent,
            sandbox,
            make_provider(ctx.model, agent),
            self._bounds(),
            self._progress,
            self._finish,
            ctx.forecast.watch(
                attempt.agent_id, attempt.task_id, attempt.repository, attempt.base_branch
            ),
            transcript=self._progress.transcript,
            meter=self._meter.worker_call,
        )
        if (failure := self._failure()) is not None:
            raise failure
        return outcome

    def _bounds(self) -> Bounds:
        s = self.ctx.settings
        timeout = float(self.attempt.request.options.timeout or s.agent_default_timeout_s)
        return Bounds(max_turns=s.agent_max_turns, timeout_s=timeout, max_tokens=s.agent_max_tokens)

    def _accepted(self) -> Accept | None:
        return self._finish.accepted if self._finish is not None else None

    def _failure(self) -> BaseException | None:
        """What stopped the loop from inside: the fence, or a failed finish step."""
        if self._progress.fenced_off is not None:
            return self._progress.fenced_off
        return self._finish.failure if self._finish is not None else None

    async def _lost(self) -> Verdict:
        """Another spawner owns the task (fenced off) or this one lost NATS (its lease):
        kill the sandbox and write nothing, not even a cleanup event; the worktree is
        left to the attempt that owns the task now (gitops would refuse us anyway)."""
        log.warning("attempt %d lost its task: stopping, writing nothing", self.attempt.number,
                    extra=self.attempt.log)  # fmt: skip
        await self._retirement.abandon()
        return Verdict.LOST

    async def _killed(self) -> None:
        """Stop the sandbox at once, record ``killed``, and count the kill once the
        sandbox is gone; the worktree is retired after (the run's ``finally``)."""
        sandbox = self._retirement.sandbox
        if sandbox is not None:  # after the order's kill_now: waits for it, kills nothing twice
            with contextlib.suppress(Exception):  # the killswitch may have removed it already
                await sandbox.kill()
        if not await endings.killed(self.attempt, self.running):
            return
        await self._retirement.close_sandbox()
        endings.count_kill(self.running)


def _handled_cancellation() -> None:
    """Clear the current task's pending cancellation once it has been caught here, so
    ``raise_if_cancelled`` in the attempt's state writes lets the hand-back and kill
    records through."""
    task = asyncio.current_task()
    if task is not None:
        while task.cancelling():
            task.uncancel()
