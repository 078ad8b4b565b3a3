"""A task whose queue deliveries run out ends ``failed`` with its reasons, never pending.

A real JetStream consumer with a small ``max_deliver``: the spawner that holds the last
delivery fails the task itself; a spawner that died holding it leaves it to JetStream's
MAX_DELIVERIES advisory, which any spawner turns into ``failed`` and a deleted message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from mosaic.embedded import ServerProcess, start_nats
from services.spawner.exhausted import MAX_DELIVERIES_ADVISORY, on_max_deliveries
from shared import queue, subjects
from shared.messages.agents import AgentState, TaskState
from shared.messages.gitops import WorktreeRequested
from shared.messages.tasks import TaskQueued
from tests.integration.reliability.conftest import Spawner, queue_agent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FINISH = [{"tool": "finish", "input": {"summary": "done"}}]
WORK = [{"tool": "write_file", "input": {"path": "work.txt", "content": "work\n"}}, *FINISH]
"""A change, so the finish asks the gates (a finish with nothing changed asks none)."""


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_nats(tmp_path / "nats")
    yield server
    server.stop()


@pytest.fixture
def bus_url(own_nats: ServerProcess) -> str:
    return f"nats://127.0.0.1:{own_nats.port}"


@pytest.fixture
async def nc(bus_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(bus_url)
    yield client
    await client.close()


async def _next(nc: Client, task: TaskQueued, timeout: float = 10) -> Msg:
    sub = await nc.jetstream().pull_subscribe_bind(
        durable=queue.consumer_name(task.request.priority), stream=subjects.TASKS_STREAM
    )
    [msg] = await sub.fetch(1, timeout=timeout)
    return msg


async def test_the_last_delivery_of_a_retried_task_fails_it(
    make_spawner: Callable[..., Awaitable[Spawner]], nc: Client, remote_repo: Path
) -> None:
    # no gates service: every finish fails retryably ("gates unavailable")
    spawner = await make_spawner(
        "spawner-last", task_max_deliver=2, retry_base_delay_s=0.1, retry_max_delay_s=0.2
    )
    store = spawner.ctx.tracker.store
    js = nc.jetstream()
    await queue.ensure_consumers(js, 30, 2)
    task = await queue_agent(store, remote_repo, "last1", WORK, maxRetries=5)
    await queue.publish_task(js, task)

    await spawner.worker.handle(await _next(nc, task))  # delivery 1: retried
    record = await store.require_agent(task.agent_id)
    assert (record.task_state, record.attempts) == (TaskState.PENDING, 1)

    await spawner.worker.handle(await _next(nc, task))  # delivery 2 of 2: no retry left
    record = await store.require_agent(task.agent_id)
    assert (record.state, record.task_state, record.attempts) == (
        AgentState.FAILED,
        TaskState.FAILED,
        2,
    )
    assert record.attempt_reasons == [
        "attempt 1: gates: gates unavailable",
        "attempt 2: gates: gates unavailable",
        "attempt 2: no retry: the queue's 2 deliveries are spent",
    ]
    stream = await js.stream_info(subjects.TASKS_STREAM)
    assert stream.state.messages == 0  # settled, not left for a delivery that never comes


async def test_a_task_whose_spawner_died_on_its_last_delivery_ends_failed(
    make_spawner: Callable[..., Awaitable[Spawner]], nc: Client, remote_repo: Path
) -> None:
    spawner = await make_spawner("spawner-advisory", task_max_deliver=1)
    store = spawner.ctx.tracker.store
    js = nc.jetstream()
    await queue.ensure_consumers(js, 1, 1)

    async def advisory(msg: Msg) -> None:  # what every spawner subscribes (app.serve)
        await on_max_deliveries(js, spawner.ctx.tracker, msg.data, spawner.ctx.gitops)

    await nc.subscribe(MAX_DELIVERIES_ADVISORY, cb=advisory)
    task = await queue_agent(store, remote_repo, "died1", FINISH)
    await queue.publish_task(js, task)
    await _next(nc, task)  # delivered once, the only delivery: its spawner "dies" with it
    assert await spawner.worker._claim(task) == 1
    # ... after gitops made its repository and the agent wrote there, before it said so
    made = await spawner.ctx.gitops.create_worktree(
        WorktreeRequested(
            agent_id=task.agent_id,
            task_id=task.request.task_id,
            repository=str(remote_repo),
            base_branch="main",
            attempt=1,
        )
    )
    leftover = Path(made.path or "")
    (leftover / "unsaved.txt").write_text("work of the attempt that died\n")

    deadline = time.monotonic() + 30
    while (await store.require_agent(task.agent_id)).state != AgentState.FAILED:
        assert time.monotonic() < deadline, "the task stayed active after its last delivery"
        with pytest.raises(nats.errors.TimeoutError):  # polls drive JetStream's redelivery
            await _next(nc, task, timeout=0.5)
    record = await store.require_agent(task.agent_id)
    assert record.task_state == TaskState.FAILED
    assert record.attempt_reasons == ["the queue gave up after 1 deliveries"]
    # nothing runs it again, so its leftovers are removed here, the work salvaged first
    while leftover.exists() or record.salvage_branch is None:
        assert time.monotonic() < deadline, "the crashed attempt's repository stayed"
        await asyncio.sleep(0.1)
        record = await store.require_agent(task.agent_id)
    assert record.salvage_branch == f"mosaic/salvage/{task.agent_id}"
    for _ in range(50):
        if (await js.stream_info(subjects.TASKS_STREAM)).state.messages == 0:
            break
        await asyncio.sleep(0.1)
    assert (await js.stream_info(subjects.TASKS_STREAM)).state.messages == 0


async def test_a_delivery_of_a_task_already_running_here_leaves_the_run_alone(
    make_spawner: Callable[..., Awaitable[Spawner]], nc: Client, remote_repo: Path
) -> None:
    """JetStream delivers a task again while this spawner runs it (its renewals came too
    late: the consumer's ack wait is 1 s, the spawner renews every 10 s). Claimed again,
    the delivery read the run as one whose spawner crashed and, with no retry left,
    ended it ``failed`` and removed its repository under it (CI, a saturated machine).
    Now the run goes on, renews and settles the newest delivery, and ends on its own."""
    spawner = await make_spawner("spawner-again", task_ack_wait_s=30)
    store = spawner.ctx.tracker.store
    js = nc.jetstream()
    await queue.ensure_consumers(js, 1, 5)
    sleeps = [{"tool": "run_command", "input": {"command": "sleep 3"}}, *WORK]
    task = await queue_agent(store, remote_repo, "again1", sleeps, maxRetries=0)
    await queue.publish_task(js, task)

    first = asyncio.create_task(spawner.worker.handle(await _next(nc, task)))
    again = await _next(nc, task, timeout=10)  # the ack wait ran out: delivered again
    assert again.metadata.num_delivered == 2
    await asyncio.wait_for(spawner.worker.handle(again), 5)  # returns at once
    record = await store.require_agent(task.agent_id)
    assert (record.state, record.attempts) == (AgentState.RUNNING, 1)
    assert record.attempt_reasons == []
    await asyncio.wait_for(first, 60)

    record = await store.require_agent(task.agent_id)
    # no gates service here: the finish fails; the first attempt's own ending, not a crash's
    assert record.attempts == 1
    assert record.attempt_reasons == ["attempt 1: gates: gates unavailable"]
    assert record.state == AgentState.FAILED
    started = time.monotonic()
    while (await js.stream_info(subjects.TASKS_STREAM)).state.messages:
        assert time.monotonic() - started < 5, "the task was never settled"
        await asyncio.sleep(0.1)
