"""A spawner cut off from NATS kills its own agents within its lease and marks nothing.

The task comes from a real JetStream consumer; then the test stops the nats-server, as
a partition would look from the spawner: JetStream will redeliver the task elsewhere
after the ack wait, so this spawner must stop its agent by itself.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import nats
import pytest

from mosaic.embedded import ServerProcess, start_nats
from shared import queue
from shared.messages.agents import AgentState
from tests.integration.reliability.conftest import Spawner, queue_agent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LEASE_S = 3.0


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_nats(tmp_path / "nats")
    yield server
    server.stop()


@pytest.fixture
def bus_url(own_nats: ServerProcess) -> str:
    return f"nats://127.0.0.1:{own_nats.port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    return status != "Z"


async def test_a_spawner_cut_from_nats_kills_its_agent_within_the_lease(
    make_spawner: Callable[..., Awaitable[Spawner]],
    own_nats: ServerProcess,
    bus_url: str,
    remote_repo: Path,
) -> None:
    spawner = await make_spawner("spawner-cut", task_ack_wait_s=LEASE_S * 2, task_lease_s=LEASE_S)
    store = spawner.ctx.tracker.store
    plan = [
        {
            "tool": "run_command",
            "input": {"command": "echo $$ > agent.pid; exec sleep 90", "timeout": 120},
        },
        {"tool": "finish", "input": {"summary": "slept"}},
    ]
    task = await queue_agent(store, remote_repo, "cut1", plan)
    nc = await nats.connect(bus_url)
    js = nc.jetstream()
    await queue.ensure_consumers(js, LEASE_S * 2, 200)
    await queue.publish_task(js, task)
    sub = await js.pull_subscribe_bind(
        durable=queue.consumer_name(task.request.priority), stream="TASKS"
    )
    [msg] = await sub.fetch(1, timeout=10)
    handling = asyncio.create_task(spawner.worker.handle(msg))

    deadline = time.monotonic() + 30
    pid_file: Path | None = None
    while pid_file is None or not pid_file.is_file() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the agent's command never started"
        record = await store.require_agent(task.agent_id)
        if record.worktree:
            pid_file = Path(record.worktree) / "agent.pid"
        await asyncio.sleep(0.05)
    pid = int(pid_file.read_text())
    assert _alive(pid)
    running = await store.require_agent(task.agent_id)
    assert running.state == AgentState.RUNNING
    history = len(await store.events(task.agent_id))

    await nc.close()
    cut = time.monotonic()
    own_nats.stop()  # the spawner's NATS is gone (Valkey is not)
    await asyncio.wait_for(handling, LEASE_S * 10)
    ended = time.monotonic() - cut
    while _alive(pid) and time.monotonic() - cut < LEASE_S * 10:
        await asyncio.sleep(0.05)
    killed = time.monotonic() - cut

    assert not _alive(pid), "the agent's process outlived the lease"
    assert killed < LEASE_S + 5, (ended, killed)  # the lease, plus slack for a loaded host
    assert killed > LEASE_S * 0.5, (ended, killed)  # it was the lease, not an early crash
    # marks nothing afterwards: the task stays the queue's, to be redelivered elsewhere
    assert await store.require_agent(task.agent_id) == running
    assert len(await store.events(task.agent_id)) == history
