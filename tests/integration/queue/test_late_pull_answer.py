"""A pull whose answer comes after the spawner stopped waiting for it (a consumer leader
moving on a cluster) must not be read later as the answer to the next pull.

The server here runs without JetStream, so the pull requests reach a stand-in for a
slow consumer leader instead: it answers the first pull late (after the dispatcher's
2 s wait) and every later pull at once. The real dispatcher runs against it.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import nats
import pytest
from nats.aio.msg import Msg

from mosaic.embedded import free_port, nats_server_binary, wait_for_port
from services.spawner.dispatcher import Dispatcher

pytestmark = pytest.mark.integration

LATE_S = 2.3
"""After the dispatcher's 2 s wait for an answer, before its next pull (0.5 s + idle)."""


@pytest.fixture
def plain_nats() -> Iterator[str]:
    """A nats-server with no JetStream: nobody but the test answers ``$JS.API``."""
    port = free_port()
    proc = subprocess.Popen(
        [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, 15, "nats-server")
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


async def test_a_late_answer_to_an_abandoned_pull_is_never_taken(plain_nats: str) -> None:
    leader = await nats.connect(plain_nats)
    spawner = await nats.connect(plain_nats)
    pulls = 0

    async def slow_leader(msg: Msg) -> None:
        nonlocal pulls
        pulls += 1
        if pulls == 1:
            await asyncio.sleep(LATE_S)
            await leader.publish(msg.reply, b"late")
        else:
            await leader.publish(msg.reply, f"fresh-{pulls}".encode())

    await leader.subscribe("$JS.API.CONSUMER.MSG.NEXT.>", cb=slow_leader)
    await leader.flush()
    taken: list[bytes] = []
    first = asyncio.Event()

    async def handle(msg: Msg) -> None:
        taken.append(msg.data)
        first.set()

    dispatcher = Dispatcher(spawner, slots=1, handle=handle, idle_wait_s=0.25)
    runner = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.wait_for(first.wait(), 20)
        await asyncio.sleep(0.5)  # the late answer is long delivered by now
    finally:
        await dispatcher.stop()
        await asyncio.wait_for(runner, 10)
        await spawner.close()
        await leader.close()
    assert pulls >= 2
    assert b"late" not in taken, taken
    assert taken[0].startswith(b"fresh-")
