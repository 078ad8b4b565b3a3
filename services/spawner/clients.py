"""Typed calls to gitops and gates over NATS request/reply.

Both are addressed to this spawner's host (``MOSAIC_HOST_ID``): the agent's worktree,
sandbox and gate runs stay on the host that took its task."""

from __future__ import annotations

import asyncio
import logging

from faststream.nats import NatsBroker

from services.spawner.errors import StepFailedError
from shared import subjects
from shared.backoff import backoff_delay
from shared.bus import request
from shared.errors import BusUnavailableError
from shared.messages.base import Failure
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


class GitOps:
    """The gitops service of one host (this spawner's), as the spawner sees it."""

    def __init__(self, broker: NatsBroker, timeout: float, host: str) -> None:
        self._broker = broker
        self._timeout = timeout
        self.host = host

    def at(self, host: str) -> GitOps:
        """The gitops of another host (what a crashed attempt left there is removed there)."""
        return self if host == self.host else GitOps(self._broker, self._timeout, host)

    def _subject(self, operation: GitOp) -> str:
        return subjects.gitops(self.host, operation)

    async def create_worktree(self, req: WorktreeRequested) -> WorktreeReady:
        """A worktree for the agent, or ``StepFailedError``."""
        reply = await request(
            self._broker, self._subject(GitOp.WORKTREE_CREATE), req, WorktreeReady, self._timeout
        )
        if reply.error is not None:
            raise StepFailedError("worktree", reply.error)
        return reply

    async def commit(self, req: CommitRequested) -> CommitMade:
        """Commit (after the secret scan); a failure is returned, not raised, for the agent."""
        return await request(
            self._broker, self._subject(GitOp.COMMIT), req, CommitMade, self._timeout
        )

    async def push(self, req: PushRequested) -> PushDone:
        """Conflict check then push; conflicts come back in the reply."""
        return await request(self._broker, self._subject(GitOp.PUSH), req, PushDone, self._timeout)

    async def base_status(self, req: BaseStatusRequested) -> BaseStatus:
        """The agent branch against the freshly fetched base, or ``StepFailedError``."""
        reply = await request(
            self._broker, self._subject(GitOp.BASE_STATUS), req, BaseStatus, self._timeout
        )
        if reply.error is not None:
            raise StepFailedError("base status", reply.error)
        return reply

    async def integrate(self, req: IntegrateRequested) -> Integrated:
        """The agent branch rebased onto the base in a scratch repository; conflicts in the
        reply (``conflicts``), any other failure raised as ``StepFailedError``."""
        reply = await request(
            self._broker, self._subject(GitOp.INTEGRATE), req, Integrated, self._timeout
        )
        if reply.error is not None and not reply.conflicts:
            raise StepFailedError("integrate", reply.error)
        return reply

    async def land(self, req: LandRequested) -> Landed:
        """The integrated commit pushed to the base (``moved`` when the base moved first)."""
        reply = await request(self._broker, self._subject(GitOp.LAND), req, Landed, self._timeout)
        if reply.error is not None and reply.commit is None:
            raise StepFailedError("land", reply.error)
        return reply

    async def changes(self, req: ChangesRequested) -> ChangesFound:
        """The agent's current changes against its base (for the conflict forecast)."""
        return await request(
            self._broker, self._subject(GitOp.CHANGES), req, ChangesFound, self._timeout
        )

    async def remove_worktree(self, req: WorktreeRemoveRequested) -> WorktreeRemoved:
        """Remove the worktree, salvaging unpushed work."""
        return await request(
            self._broker, self._subject(GitOp.WORKTREE_REMOVE), req, WorktreeRemoved, self._timeout
        )


class Gates:
    """The gates service; retried with backoff, never skipped when it does not answer."""

    def __init__(self, broker: NatsBroker, timeout: float, attempts: int, host: str) -> None:
        self._broker = broker
        self._timeout = timeout
        self._attempts = attempts
        self.host = host

    async def check(self, req: GateCheckRequested) -> GateDecision:
        """The decision; ``StepFailedError('gates unavailable')`` after the last attempt."""
        for attempt in range(1, self._attempts + 1):
            try:
                return await request(
                    self._broker, subjects.gates_check(self.host), req, GateDecision, self._timeout
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
