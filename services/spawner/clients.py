"""Typed calls to gitops and gates over NATS request/reply.

Both are addressed to this spawner's host (``MOSAIC_HOST_ID``): the agent's worktree,
sandbox and gate runs stay on the host that took its task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TypeVar

from faststream.nats import NatsBroker

from services.spawner.admission import Admission
from services.spawner.errors import StepFailedError
from shared import subjects
from shared.backoff import backoff_delay
from shared.bus import request
from shared.errors import BusUnavailableError
from shared.messages.base import Failure, Message
from shared.messages.gates import GateCheckRequested, GateDecision
from shared.messages.gitops import (
    BaseStatus,
    BaseStatusRequested,
    ChangesFound,
    ChangesRequested,
    CommitMade,
    CommitRequested,
    Integrated,
    IntegrateRequested,
    Landed,
    LandRequested,
    PushDone,
    PushRequested,
    WorktreeReady,
    WorktreeRemoved,
    WorktreeRemoveRequested,
    WorktreeRequested,
)
from shared.subjects import GitOp

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Message)


class GitOps:
    """The gitops service of one host (this spawner's), as the spawner sees it. With
    ``admission``, every request is counted in flight and its answer time adjusts the
    intake's limit (admission.py)."""

    def __init__(
        self, broker: NatsBroker, timeout: float, host: str, admission: Admission | None = None
    ) -> None:
        self._broker = broker
        self._timeout = timeout
        self.host = host
        self._admission = admission

    def at(self, host: str) -> GitOps:
        """The gitops of another host (what a crashed attempt left there is removed there)."""
        if host == self.host:
            return self
        return GitOps(self._broker, self._timeout, host, self._admission)

    async def _ask(self, operation: GitOp, req: Message, reply: type[R]) -> R:
        subject = subjects.gitops(self.host, operation)
        tracked = self._admission.track() if self._admission else contextlib.nullcontext()
        async with tracked:
            return await request(self._broker, subject, req, reply, self._timeout)

    async def create_worktree(self, req: WorktreeRequested) -> WorktreeReady:
        """A worktree for the agent, or ``StepFailedError``."""
        reply = await self._ask(GitOp.WORKTREE_CREATE, req, WorktreeReady)
        if reply.error is not None:
            raise StepFailedError("worktree", reply.error)
        return reply

    async def commit(self, req: CommitRequested) -> CommitMade:
        """Commit (after the secret scan); a failure is returned, not raised, for the agent."""
        return await self._ask(GitOp.COMMIT, req, CommitMade)

    async def push(self, req: PushRequested) -> PushDone:
        """Conflict check then push; conflicts come back in the reply."""
        return await self._ask(GitOp.PUSH, req, PushDone)

    async def base_status(self, req: BaseStatusRequested) -> BaseStatus:
        """The agent branch against the freshly fetched base, or ``StepFailedError``."""
        reply = await self._ask(GitOp.BASE_STATUS, req, BaseStatus)
        if reply.error is not None:
            raise StepFailedError("base status", reply.error)
        return reply

    async def integrate(self, req: IntegrateRequested) -> Integrated:
        """The agent branch rebased onto the base in a scratch repository; conflicts in the
        reply (``conflicts``), any other failure raised as ``StepFailedError``."""
        reply = await self._ask(GitOp.INTEGRATE, req, Integrated)
        if reply.error is not None and not reply.conflicts:
            raise StepFailedError("integrate", reply.error)
        return reply

    async def land(self, req: LandRequested) -> Landed:
        """The integrated commit pushed to the base (``moved`` when the base moved first)."""
        reply = await self._ask(GitOp.LAND, req, Landed)
        if reply.error is not None and reply.commit is None:
            raise StepFailedError("land", reply.error)
        return reply

    async def changes(self, req: ChangesRequested) -> ChangesFound:
        """The agent's current changes against its base (for the conflict forecast)."""
        return await self._ask(GitOp.CHANGES, req, ChangesFound)

    async def remove_worktree(self, req: WorktreeRemoveRequested) -> WorktreeRemoved:
        """Remove the worktree, salvaging unpushed work."""
        return await self._ask(GitOp.WORKTREE_REMOVE, req, WorktreeRemoved)


class Gates:
    """The gates service; retried with backoff, never skipped when it does not answer."""

    def __init__(
        self,
        broker: NatsBroker,
        timeout: float,
        attempts: int,
        host: str,
        admission: Admission | None = None,
    ) -> None:
        self._broker = broker
        self._timeout = timeout
        self._attempts = attempts
        self.host = host
        self._admission = admission

    async def check(self, req: GateCheckRequested) -> GateDecision:
        """The decision; ``StepFailedError('gates unavailable')`` after the last attempt."""
        for attempt in range(1, self._attempts + 1):
            # counted in flight; a check's length (it runs tests) is no congestion signal
            tracked = (
                self._admission.track(signal=False) if self._admission else contextlib.nullcontext()
            )
            try:
                async with tracked:
                    return await request(
                        self._broker,
                        subjects.gates_check(self.host),
                        req,
                        GateDecision,
                        self._timeout,
                    )
            except BusUnavailableError:
                if attempt == self._attempts:
                    break
                log.warning(
                    "gates did not answer (attempt %d); retrying",
                    attempt,
                    extra={"agent_id": req.agent_id},
                )
                await asyncio.sleep(backoff_delay(attempt, base=0.5, cap=10.0))
        raise StepFailedError(
            "gates",
            Failure(code="gates_unavailable", message="gates unavailable", retryable=True),
        )
