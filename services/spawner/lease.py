"""The lease a spawner holds on a task while its agent runs.

JetStream lends a task to one spawner for the ack wait; in-progress acks renew the loan.
A renewal counts only once the server confirms it (a ping round trip after the ack):
a spawner cut off from NATS keeps publishing into its client's buffer and would never
notice. When no renewal has been confirmed for ``lease_s`` the task may already be
redelivered to another spawner, so the lease declares itself lost and the run stops:
it kills its sandbox and writes nothing more (the fencing tokens refuse it anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg

from shared.bus import flush

log = logging.getLogger(__name__)


class Lease:
    """Renews ``msg`` every third of the ack wait; calls ``on_lost`` once if it lapses."""

    def __init__(
        self,
        msg: Msg,
        nc: Client,
        *,
        ack_wait_s: float,
        lease_s: float,
        on_lost: Callable[[], None],
    ) -> None:
        self.msg = msg
        """The delivery renewed, and the one the run's ending settles (``adopt``)."""
        self._nc = nc
        self._interval = max(ack_wait_s / 3, 0.2)
        self._lease_s = lease_s
        self._on_lost = on_lost
        self._flush_wait = max(min(self._interval, lease_s / 4), 0.2)
        self.confirmed_at = time.monotonic()
        """When the server last confirmed a renewal (``time.monotonic()``)."""

    def adopt(self, msg: Msg) -> None:
        """JetStream delivered the task again while its run goes on here (a renewal came
        too late, a saturated machine): renew and settle through the newest delivery."""
        self.msg = msg

    async def keep(self) -> None:
        """Renew until cancelled, or until the lease lapses (then ``on_lost``, return)."""
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # Python 3.11's wait_for can swallow a cancellation that lands as the
                # flush completes; renewing on would keep a settled message in flight
                # for ever (the chaos suite's task stuck ``pending``).
                return
            started = time.monotonic()
            with contextlib.suppress(Exception):  # disconnected: the lease runs down
                await self.msg.in_progress()
                await flush(self._nc, self._flush_wait)
                # While nats-py reconnects, flush can return with no round trip made
                # (the chaos suite's cut showed it): only a connected client confirms.
                if self._nc.is_connected:
                    self.confirmed_at = time.monotonic()
            if time.monotonic() - self.confirmed_at >= self._lease_s:
                log.error(
                    "lease lost: NATS has not confirmed an in-progress ack for %.1fs",
                    time.monotonic() - self.confirmed_at,
                )
                self._on_lost()
                return
            elapsed = time.monotonic() - started
            remaining = self._lease_s - (time.monotonic() - self.confirmed_at)
            await asyncio.sleep(max(min(self._interval - elapsed, remaining), 0.05))
