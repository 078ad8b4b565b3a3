"""Requests to a service seen on the bus and not yet answered: when the suite kills
gitops or gates, it waits for one of these, so each kill lands mid-request.

It listens as the NATS admin user (allowed ``>``) to the service's request subjects and
to every reply inbox; a request whose reply inbox has not been written to is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg


class InFlight:
    """Open requests on ``subjects`` (NATS wildcards allowed)."""

    def __init__(self, nats_url: str, subjects: tuple[str, ...]) -> None:
        self._url = nats_url
        self._subjects = subjects
        self._open: dict[str, float] = {}
        self._asked = asyncio.Event()
        self._nc: Client | None = None

    async def __aenter__(self) -> InFlight:
        self._nc = await nats.connect(self._url, max_reconnect_attempts=-1)

        async def asked(msg: Msg) -> None:
            if msg.reply:
                self._open[msg.reply] = time.monotonic()
                self._asked.set()

        async def answered(msg: Msg) -> None:
            self._open.pop(msg.subject, None)

        for subject in self._subjects:
            await self._nc.subscribe(subject, cb=asked)
        await self._nc.subscribe("_INBOX.>", cb=answered)
        await self._nc.flush()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._nc is not None:
            await self._nc.close()

    def count(self) -> int:
        """Requests open now."""
        return len(self._open)

    def forget(self) -> None:
        """Drop every open request (their server was just killed: no answer will come)."""
        self._open.clear()
        self._asked.clear()

    async def wait(self, timeout: float) -> int:
        """Wait until some request is open; how many are (0 on time-out)."""
        deadline = time.monotonic() + timeout
        while not self._open and (left := deadline - time.monotonic()) > 0:
            self._asked.clear()  # an answer may have come before this task woke up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._asked.wait(), left)
        return len(self._open)
