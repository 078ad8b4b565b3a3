"""Fencing of stale attempts: gitops refuses work from an attempt older than one it saw.

Gitops has no Valkey, so it keeps its own fence: one small file per agent under the
cache (``<cache>/.fences/<agentId>``) holding the highest attempt number any request of
that agent carried. A request is checked and the fence moved on under an exclusive
``flock`` of that file, held until the request's work has ended, so across gitops
processes a stale attempt's commit, push or removal either ran entirely before the new
attempt's first request or is refused. Why a file and not the token alone: the spawner
that lost its task still believes its number is current; only a record on gitops' side
of what it has seen can tell it otherwise, and it survives gitops restarts.

Requests without an attempt (operators, the killswitch's cleanup) are not fenced: they
act on the agent as a whole, not as one attempt of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from services.gitops.errors import GitOpsError
from services.gitops.validation import validate_id
from shared.errors import STALE_ATTEMPT
from shared.messages.gitops import FencedRequest

T = TypeVar("T")


class StaleAttemptRefusedError(GitOpsError):
    """The request's attempt is older than one this agent's fence has seen."""

    code = STALE_ATTEMPT


class Fences:
    """The per-agent fence files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._held: dict[str, asyncio.Lock] = {}
        """One in-process lock per agent, taken before its fence's flock: requests of
        one agent queue here, not as threads blocked in ``flock`` (enough of those
        would fill the default executor that the holders need for their git work, and
        gitops would wait on itself)."""

    def path(self, agent_id: str) -> Path:
        validate_id("agent id", agent_id)
        return self.root / agent_id

    def current(self, agent_id: str) -> int:
        """The highest attempt seen for ``agent_id`` (0 when none)."""
        try:
            return _parse(self.path(agent_id).read_text())
        except FileNotFoundError:
            return 0

    async def run(self, request: FencedRequest, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` if ``request``'s attempt is not stale, holding the fence meanwhile."""
        if request.attempt is None:
            return await work()
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(request.agent_id)
        local = self._held.setdefault(request.agent_id, asyncio.Lock())
        await local.acquire()
        try:
            fd = await asyncio.to_thread(_lock_and_advance, path, request.agent_id,
                                         request.attempt)  # fmt: skip
        except BaseException:
            local.release()
            raise

        def release(_: object = None) -> None:
            os.close(fd)  # closing the descriptor releases the flock
            local.release()

        job = asyncio.ensure_future(work())
        try:
            return await asyncio.shield(job)
        finally:
            if job.done():
                release()
            else:  # cancelled: keep the fence held until the work really ends
                job.add_done_callback(release)


def _lock_and_advance(path: Path, agent_id: str, attempt: int) -> int:
    """Lock the fence, refuse a stale attempt, record a newer one; returns the held fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        seen = _parse(os.pread(fd, 64, 0).decode(errors="replace"))
        if attempt < seen:
            raise StaleAttemptRefusedError(
                f"attempt {attempt} of agent {agent_id} is stale: attempt {seen} owns it now"
            )
        if attempt > seen:
            data = f"{attempt}\n".encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return fd


def _parse(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0
