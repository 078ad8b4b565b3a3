"""A flush its caller stops waiting for leaves the connection working (``shared.bus``).

nats-py resolves a ping's future on the PONG; a flush cancelled by its caller left a
cancelled future there, and the late PONG killed the client's read loop, so the process
heard nothing more (a spawner whose lease was stopped mid-flush wedged this way).
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.aio.msg import Msg

from shared.bus import flush

pytestmark = pytest.mark.integration


async def test_cancelled_flushes_leave_the_connection_reading(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        for _ in range(50):  # cancel flushes at once and mid-flight, again and again
            waiting = asyncio.create_task(flush(nc, 5))
            await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        sub = await nc.subscribe("flush.echo", cb=echo)
        for n in range(5):  # replies still arrive: the read loop is alive
            answer = await nc.request("flush.echo", str(n).encode(), timeout=5)
            assert answer.data == str(n).encode()
        await flush(nc, 5)  # and a flush waited for completes
        await sub.unsubscribe()
    finally:
        await nc.close()
