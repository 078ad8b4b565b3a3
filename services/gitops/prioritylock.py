"""An asyncio lock whose waiters are served by priority, then in arrival order.

The repository lock serialises git writes on one repository. Under load, worktree
creations for newly started agents would otherwise queue ahead of the pushes and
removals of agents that are finishing, so nothing finishes while the queue grows; with
priorities, finishing work goes first and frees slots.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

URGENT = 0
NORMAL = 1


class PriorityLock:
    """Mutual exclusion; on release the lock passes to the most urgent, oldest waiter."""

    def __init__(self) -> None:
        self._locked = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    def locked(self) -> bool:
        """Whether someone holds the lock."""
        return self._locked

    async def acquire(self, priority: int = NORMAL) -> None:
        """Wait for the lock (lower ``priority`` numbers are served first)."""
        if not self._locked and not self._waiters:
            self._locked = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the lock was handed to us as we were cancelled: pass it on
            raise

    def release(self) -> None:
        """Hand the lock to the next live waiter, or free it."""
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # ownership passes on; the lock stays taken
                return
        self._locked = False

    @asynccontextmanager
    async def hold(self, priority: int = NORMAL) -> AsyncIterator[None]:
        """``async with lock.hold(URGENT): ...``."""
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()
