"""The load tests' floors (issue 20): plain git serially, and the bare accept endpoint
doing one real Valkey write and one real JetStream publish per request."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from nats.aio.msg import Msg
from redis.asyncio import Redis

from loadtests import bare, gitfloor
from loadtests.resources import MachineCpu

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_git_floors_run_their_cycles_on_a_fresh_repository() -> None:
    cycles = gitfloor.serial_git_cycles(3)
    pairs = gitfloor.worktree_add_remove(3)
    for floor in (cycles, pairs):
        assert floor["rounds"] == 3
        assert floor["seconds"] > 0
        # both figures are rounded (seconds to 1 ms, the rate to 0.01)
        assert floor["per_second"] == pytest.approx(3 / floor["seconds"], rel=0.02, abs=0.01)
        assert floor["cpu_seconds"] > 0  # the git processes' own CPU, reaped


def test_the_machines_busy_cpu_counts_at_least_what_this_process_burnt() -> None:
    """``MachineCpu``: the busy seconds of every core, so a scenario can say whether the
    CPU alone bounds its wall; whatever else runs only adds to it."""
    before = time.process_time()
    machine = MachineCpu()
    while time.process_time() - before < 0.3:
        pass
    figures = machine.stop(units=3)
    burnt = time.process_time() - before
    assert figures["busy_cpu_seconds"] >= burnt * 0.9  # tick-based accounting: 10 ms steps
    assert figures["cpu_ms_per_unit"] == pytest.approx(
        1000 * figures["busy_cpu_seconds"] / 3, abs=0.1
    )
    assert figures["cpu_bound_wall_seconds"] == pytest.approx(
        figures["busy_cpu_seconds"] / figures["cores"], abs=0.01
    )


async def test_bare_endpoint_writes_valkey_and_publishes_once_per_request(
    nats_url: str, valkey_url: str, redis: Redis
) -> None:
    nc = await nats.connect(nats_url)
    seen: list[bytes] = []

    async def count(msg: Msg) -> None:
        seen.append(msg.data)

    sub = await nc.subscribe(bare.SUBJECT, cb=count)
    before = len(await redis.keys("loadtest:bare:*"))
    bodies = [{"taskId": f"floor-{n}"} for n in range(20)]
    try:
        result = await bare.accept_rate(nats_url, valkey_url, bodies, parallel=5)
        await asyncio.sleep(0.2)
    finally:
        await sub.unsubscribe()
        await nc.close()
    assert result["accepted"] == 20
    assert result["errors"] == []
    assert result["per_second"] > 0
    published = [m for m in seen if b"floor-" in m]
    assert len(published) == 20
    assert len(await redis.keys("loadtest:bare:*")) - before >= 20
