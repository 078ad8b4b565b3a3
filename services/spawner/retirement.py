"""The last step of every attempt: close its sandbox, retire its worktree, say so once.

However an attempt ends (finished, failed, killed, handed back), what it opened is
closed exactly once: the first call runs the step, later calls wait for that same run
(the run's ``finally`` makes sure it happened even when its ending was cancelled).
An attempt that lost its task abandons instead: the sandbox is killed, the worktree is
left to the attempt that owns the task now, and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.exceptions import RedisError

from services.spawner.attempt import Attempt
from services.spawner.run_context import RunContext
from shared.errors import MosaicError
from shared.sandbox.base import Sandbox
from shared.worktrees import retire_worktree

log = logging.getLogger(__name__)


class Retirement:
    """What one attempt opened, and the one step that ends it."""

    def __init__(self, ctx: RunContext, attempt: Attempt) -> None:
        self._ctx = ctx
        self._attempt = attempt
        self.worktree_asked = False
        """The worktree was asked for: remove it even if the answer never came."""
        self.sandbox: Sandbox | None = None
        self._detail: dict[str, Any] = {}
        self._closing: asyncio.Future[None] | None = None
        self._ending: asyncio.Future[None] | None = None

    async def close_sandbox(self) -> None:
        """Close the sandbox (once): gone, not just stopped."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close_sandbox())
        await asyncio.shield(self._closing)

    async def retire(self) -> None:
        """Close the sandbox, retire the worktree (salvage, then remove), record a
        ``cleanup`` event; once, whoever calls first."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._retire())
        await asyncio.shield(self._ending)

    async def abandon(self) -> None:
        """Lost the task: kill the sandbox and write nothing (unless already retired)."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._abandon())
        await asyncio.shield(self._ending)

    async def _close_sandbox(self) -> None:
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is None:
            return
        try:
            await sandbox.close()
            self._detail["sandbox"] = "removed"
        except Exception:
            log.exception("sandbox cleanup failed", extra=self._attempt.log)

    async def _retire(self) -> None:
        attempt = self._attempt
        self._ctx.forecast.forget(attempt.agent_id)
        await self.close_sandbox()
        if self.worktree_asked:
            retired = await retire_worktree(
                self._ctx.gitops.remove_worktree, attempt.worktree_remove_requested()
            )
            if retired is not None:
                self._detail |= retired.detail
                try:
                    await attempt.tracker.update(retired.patch)
                except (MosaicError, RedisError):
                    log.warning("could not record the worktree's removal", extra=attempt.log,
                                exc_info=True)  # fmt: skip
        if self._detail:
            try:
                await attempt.tracker.record("cleanup", self._detail)
            except (MosaicError, RedisError):  # fenced off, or Valkey down: the end says more
                log.warning("could not record the cleanup", extra=attempt.log, exc_info=True)

    async def _abandon(self) -> None:
        self._ctx.forecast.forget(self._attempt.agent_id)
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is not None:
            with contextlib.suppress(Exception):
                await sandbox.close()
