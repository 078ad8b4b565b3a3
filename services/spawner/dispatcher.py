"""Takes tasks from JetStream in priority order, never more than the free slots, and,
with admission control (admission.py), only while its dependencies keep up.

Each priority band has its own durable consumer; a probe is a ``no_wait`` pull of one
message, highest band first, so a waiting priority-1 task always goes before a
priority-2 one. When every band is empty the loop sleeps on a doorbell (a core
subscription to the task subjects, rung by every publish) or a short poll interval, which
also catches redeliveries
and retries whose backoff delay has run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.spawner.admission import Admission, Ticket
from shared import queue, subjects

log = logging.getLogger(__name__)

_NEXT = json.dumps({"batch": 1, "no_wait": True}).encode()

Handler = Callable[[Msg], Awaitable[None]]


class Dispatcher:
    """Pulls tasks into at most ``slots`` concurrent handlers."""

    def __init__(
        self,
        nc: Client,
        slots: int,
        handle: Handler,
        idle_wait_s: float = 0.25,
        admission: Admission | None = None,
    ) -> None:
        self._nc = nc
        self._slots = asyncio.Semaphore(slots)
        self._admission = admission
        self._handle = handle
        self._idle_wait_s = idle_wait_s
        self._doorbell = asyncio.Event()
        self._paused = asyncio.Event()
        self._paused.set()
        self._inboxes: dict[int, Subscription] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def active(self) -> int:
        """How many tasks are being handled now."""
        return len(self._running)

    def pause(self) -> None:
        """Take no new tasks (kill-all in force); running ones are unaffected."""
        self._paused.clear()

    def resume(self) -> None:
        """Take tasks again."""
        self._paused.set()
        self._doorbell.set()

    async def run(self) -> None:
        """The intake loop; returns when ``stop`` is called."""

        async def ring(_: Msg) -> None:
            self._doorbell.set()

        bell = await self._nc.subscribe(subjects.TASKS_ALL, cb=ring)
        for priority in queue.PRIORITIES:
            self._inboxes[priority] = await self._nc.subscribe(self._nc.new_inbox())
        try:
            while not self._stopping:
                await self._paused.wait()
                await self._slots.acquire()
                ticket = await self._admission.admit() if self._admission else None
                if not self._paused.is_set():  # paused while we waited for a slot
                    self._give_back(ticket)
                    continue
                self._doorbell.clear()
                msg = await self._next_quietly()
                if msg is None:
                    self._give_back(ticket)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._doorbell.wait(), self._idle_wait_s)
                    continue
                task = asyncio.create_task(self._run_one(msg, ticket))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        finally:
            await bell.unsubscribe()
            for sub in self._inboxes.values():
                await sub.unsubscribe()

    async def stop(self) -> None:
        """Stop taking tasks; in-flight handlers are left to the caller."""
        self._stopping = True
        self._doorbell.set()
        self._paused.set()

    def _give_back(self, ticket: Ticket | None) -> None:
        """A slot (and admission) taken for a task that was not taken after all."""
        if ticket is not None:
            ticket.close()
        self._slots.release()

    async def _run_one(self, msg: Msg, ticket: Ticket | None) -> None:
        admitted = (
            self._admission.admitted(ticket)
            if self._admission and ticket
            else contextlib.nullcontext()
        )
        try:
            with admitted:
                await self._handle(msg)
        except Exception:
            log.exception("task handler crashed; the task will be redelivered")
        finally:
            self._slots.release()

    async def _fresh_inbox(self, priority: int) -> None:
        """Replace a band's inbox after a pull went unanswered (a consumer leader moving
        on a cluster): its answer may still come, late, and read by the next pull as its
        own it would be a task delivered long ago, its ack wait spent, perhaps already
        given to another spawner. Nobody listens on the old inbox any more, so such a
        late delivery goes nowhere and JetStream redelivers it after the ack wait."""
        stale = self._inboxes[priority]
        self._inboxes[priority] = await self._nc.subscribe(self._nc.new_inbox())
        with contextlib.suppress(Exception):
            await stale.unsubscribe()

    async def _next_quietly(self) -> Msg | None:
        try:
            return await self._next()
        except Exception:  # NATS reconnecting: wait and try again
            log.warning("task probe failed; retrying", exc_info=True)
            await asyncio.sleep(0.5)
            return None

    async def _next(self) -> Msg | None:
        for priority in queue.PRIORITIES:
            inbox = self._inboxes[priority]
            await self._nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{subjects.TASKS_STREAM}.{queue.consumer_name(priority)}",
                _NEXT,
                reply=inbox.subject,
            )
            try:
                msg = await inbox.next_msg(timeout=2.0)
            except TimeoutError:
                await self._fresh_inbox(priority)
                raise
            if msg.headers and msg.headers.get("Status"):
                continue
            return msg
        return None
