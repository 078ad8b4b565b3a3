"""Priority then FIFO, with the real spawner intake (Dispatcher) on a real JetStream."""

from __future__ import annotations

import asyncio
import random

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.spawner.admission import Admission
from services.spawner.dispatcher import Dispatcher
from shared import queue
from shared.messages.tasks import SpawnAgentRequest, TaskContext, TaskQueued

pytestmark = pytest.mark.integration


def queued(n: int, priority: int) -> TaskQueued:
    request = SpawnAgentRequest(
        task_id=f"task-{n:04d}",
        agent_type="worker",
        context=TaskContext(repository="/tmp/repo", work_items=["x"]),
        priority=priority,
    )
    return TaskQueued(agent_id=f"agent-{n:04d}", request=request)


async def test_one_slot_takes_tasks_in_priority_then_fifo_order(nc: Client) -> None:
    js = nc.jetstream()
    await queue.ensure_consumers(js, ack_wait_s=30, max_deliver=5)
    rng = random.Random(7)
    tasks = [queued(n, rng.randint(1, 10)) for n in range(200)]
    for task in tasks:  # no spawner runs while these are queued
        await queue.publish_task(js, task)

    taken: list[TaskQueued] = []
    done = asyncio.Event()

    async def handle(msg: Msg) -> None:
        taken.append(TaskQueued.from_bytes(msg.data))
        await msg.ack()
        if len(taken) == len(tasks):
            done.set()

    dispatcher = Dispatcher(nc, slots=1, handle=handle)
    runner = asyncio.create_task(dispatcher.run())
    await asyncio.wait_for(done.wait(), 30)
    await dispatcher.stop()
    await runner

    expected = sorted(tasks, key=lambda t: (t.request.priority, t.request.task_id))
    assert [t.request.task_id for t in taken] == [t.request.task_id for t in expected]


async def test_a_new_high_priority_task_overtakes_waiting_low_ones(nc: Client) -> None:
    js = nc.jetstream()
    await queue.ensure_consumers(js, ack_wait_s=30, max_deliver=5)
    for n in range(20):
        await queue.publish_task(js, queued(n, 9))
    taken: list[str] = []
    release = asyncio.Event()

    async def handle(msg: Msg) -> None:
        taken.append(TaskQueued.from_bytes(msg.data).request.task_id)
        if len(taken) == 1:
            await release.wait()  # hold the only slot while an urgent task arrives
        await msg.ack()

    dispatcher = Dispatcher(nc, slots=1, handle=handle)
    runner = asyncio.create_task(dispatcher.run())
    while not taken:
        await asyncio.sleep(0.01)
    await queue.publish_task(js, queued(999, 1))
    release.set()
    while len(taken) < 3:
        await asyncio.sleep(0.01)
    await dispatcher.stop()
    await runner
    assert taken[0] == "task-0000"
    assert taken[1] == "task-0999"


async def test_never_more_tasks_in_flight_than_slots(nc: Client) -> None:
    js = nc.jetstream()
    await queue.ensure_consumers(js, ack_wait_s=30, max_deliver=5)
    for n in range(30):
        await queue.publish_task(js, queued(n, 5))
    active = 0
    peak = 0
    finished = 0

    async def handle(msg: Msg) -> None:
        nonlocal active, peak, finished
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        finished += 1
        await msg.ack()

    dispatcher = Dispatcher(nc, slots=4, handle=handle)
    runner = asyncio.create_task(dispatcher.run())
    while finished < 30:
        await asyncio.sleep(0.01)
    await dispatcher.stop()
    await runner
    assert peak == 4


async def test_admission_keeps_tasks_in_jetstream_while_dependencies_lag(nc: Client) -> None:
    """With 50 free slots but an admission limit of 3, only 3 tasks are taken while their
    first dependency answer is pending; each answer lets one more in, none is lost."""
    js = nc.jetstream()
    await queue.ensure_consumers(js, ack_wait_s=30, max_deliver=5)
    for n in range(12):
        await queue.publish_task(js, queued(n, 5))
    admission = Admission(50, initial=3, target_s=60)
    answer = asyncio.Event()
    taken = 0
    finished = 0

    async def handle(msg: Msg) -> None:
        nonlocal taken, finished
        taken += 1
        async with admission.track():  # the agent's first gitops request, answered late
            await answer.wait()
        finished += 1
        await msg.ack()

    dispatcher = Dispatcher(nc, slots=50, handle=handle, admission=admission)
    runner = asyncio.create_task(dispatcher.run())
    for _ in range(1000):  # a loaded machine: give the intake up to 10 s to take 3
        if taken >= 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)  # time to take more, if it would
    assert taken == 3, "admitted beyond the limit while no dependency had answered"
    answer.set()
    while finished < 12:
        await asyncio.sleep(0.01)
    await dispatcher.stop()
    await runner
    assert taken == 12
    assert admission.in_flight == 0
