"""Admission control: the spawner takes tasks only as fast as its dependencies answer.

With 1000 free slots the intake used to take 1000 tasks at once; every agent then asked
gitops for a worktree at the same moment and the last ones timed out inside gitops. Here
the intake admits a new task only while the requests in flight to gitops and gates (plus
tasks admitted that have not made their first one yet) are fewer than ``limit``, and the limit
adapts like a TCP window (AIMD): each gitops answer quicker than ``target_s`` raises it by
``1/limit`` (about +1 per round of answers), a gitops answer slower than that or a gitops
request that got none cuts it by ``decrease`` (at most once per ``target_s``, so one slow
burst counts once). Tasks the spawner does not take wait in JetStream, where waiting
costs nothing.

The requests are counted where they are made (``track``, in ``clients.py``). A task's
admission ticket is ended when its first tracked request starts (that request counts it
from then on) or when its handler ends (``admitted``); ``track`` finds it through a
context variable, so the agent's code needs no part in it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from prometheus_client import Gauge

log = logging.getLogger(__name__)

ADMISSION_LIMIT = Gauge(
    "mosaic_spawner_admission_limit",
    "The spawner's adaptive limit on dependency requests in flight (tasks wait in "
    "JetStream beyond it)",
)
ADMISSION_IN_FLIGHT = Gauge(
    "mosaic_spawner_admission_in_flight",
    "gitops/gates requests in flight plus admitted tasks that have not made one yet",
)


class Ticket:
    """One admitted task until its first dependency request (or its end)."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.open = True

    def close(self) -> None:
        """End the ticket (idempotent)."""
        if self.open:
            self.open = False
            self._admission._changed(-1)


_TICKET: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
    "mosaic_admission_ticket", default=None
)


class Admission:
    """The adaptive limit (see the module)."""

    def __init__(
        self,
        maximum: int,
        *,
        initial: int = 8,
        minimum: int = 1,
        target_s: float = 5.0,
        decrease: float = 0.7,
    ) -> None:
        if maximum < 1 or minimum < 1 or target_s <= 0 or not 0 < decrease < 1:
            raise ValueError(
                f"admission: maximum and minimum must be >= 1, target_s > 0 and decrease in "
                f"(0, 1); got {maximum}, {minimum}, {target_s}, {decrease}"
            )
        self.maximum = maximum
        self.minimum = min(minimum, maximum)
        self.limit = float(max(self.minimum, min(initial, maximum)))
        self.target_s = target_s
        self.decrease = decrease
        self.in_flight = 0
        self._room = asyncio.Event()
        self._room.set()
        self._last_cut = float("-inf")
        ADMISSION_LIMIT.set(self.limit)

    def has_room(self) -> bool:
        """Whether one more task may be admitted now."""
        return self.in_flight < int(self.limit)

    async def admit(self) -> Ticket:
        """Wait until there is room, then count one admitted task."""
        while not self.has_room():
            self._room.clear()
            await self._room.wait()
        ticket = Ticket(self)
        self._changed(+1)
        return ticket

    @contextmanager
    def admitted(self, ticket: Ticket) -> Iterator[None]:
        """Run a task's handler with its ticket visible to ``track``; closes it at the end."""
        token = _TICKET.set(ticket)
        try:
            yield
        finally:
            _TICKET.reset(token)
            ticket.close()

    @asynccontextmanager
    async def track(self, *, signal: bool = True) -> AsyncIterator[None]:
        """Count one dependency request while it runs. ``signal``: its outcome adjusts the
        limit, an answer by its time, a request that raised (no answer) by a cut (gitops;
        gates run tests, whose length says nothing about congestion, and their absence
        has its own retries and ends the attempt, so a gates check only counts)."""
        self._changed(+1)
        ticket = _TICKET.get()
        if ticket is not None:
            ticket.close()  # the task is counted by its request from now on, not twice
        started = time.monotonic()
        try:
            yield
        except asyncio.CancelledError:
            raise  # the agent was stopped: says nothing about the dependency
        except Exception:
            if signal:
                self._cut(f"a request got no answer after {time.monotonic() - started:.1f}s")
            raise
        else:
            elapsed = time.monotonic() - started
            if signal and elapsed > self.target_s:
                self._cut(f"an answer took {elapsed:.1f}s (target {self.target_s}s)")
            elif signal:
                self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
                ADMISSION_LIMIT.set(self.limit)
        finally:
            self._changed(-1)

    def _cut(self, why: str) -> None:
        now = time.monotonic()
        if now - self._last_cut < self.target_s:
            return
        self._last_cut = now
        before = self.limit
        self.limit = max(float(self.minimum), self.limit * self.decrease)
        ADMISSION_LIMIT.set(self.limit)
        log.info("admission limit %.1f -> %.1f: %s", before, self.limit, why)

    def _changed(self, delta: int) -> None:
        self.in_flight += delta
        ADMISSION_IN_FLIGHT.set(self.in_flight)
        if self.has_room():
            self._room.set()
