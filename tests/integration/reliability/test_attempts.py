"""What counts as an attempt, and which failures are retried: real servers, real runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from mosaic.embedded import ServerProcess, start_valkey
from services.spawner.agent_run import AgentRun, Verdict
from services.spawner.kills import Running
from shared.messages.agents import AgentState, TaskState
from shared.messages.tasks import TaskQueued
from shared.settings import ModelSettings
from tests.fakes.fixtures import (  # noqa: F401
    fake_messages_api,
    fake_messages_api_server,
    fake_model_settings,
)
from tests.fakes.messages_api import FakeMessagesAPI, overloaded
from tests.integration.reliability.conftest import Spawner, queue_agent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SLEEPER = [
    {"tool": "run_command", "input": {"command": "sleep 30", "timeout": 60}},
    {"tool": "finish", "input": {"summary": "slept"}},
]


async def _start(spawner: Spawner, task: TaskQueued) -> asyncio.Task[Verdict]:
    attempt = await spawner.worker._claim(task)
    assert attempt is not None

    async def run() -> Verdict:
        current = asyncio.current_task()
        assert current is not None
        running = Running(task.agent_id, task.request.task_id, current)
        return await AgentRun(spawner.ctx, task, running, attempt).execute()

    return asyncio.create_task(run())


async def test_a_hand_back_counts_only_once_the_attempt_started(
    make_spawner: Callable[..., Awaitable[Spawner]], remote_repo: Path
) -> None:
    spawner = await make_spawner("spawner-stopping")
    store = spawner.ctx.tracker.store
    task = await queue_agent(store, remote_repo, "handback1", SLEEPER)

    # stopped while its worktree was being made: no sandbox, no model call
    early = await _start(spawner, task)
    await asyncio.sleep(0)
    early.cancel("spawner stopping")
    assert await early is Verdict.HAND_BACK
    record = await store.require_agent(task.agent_id)
    assert (record.state, record.task_state, record.attempts) == (
        AgentState.SPAWNING,
        TaskState.PENDING,
        0,
    )
    assert record.attempt_reasons == [
        "handed back: its spawner stopped before the attempt started (not counted)"
    ]

    # stopped while its agent ran: that attempt counts
    late = await _start(spawner, task)
    deadline = time.monotonic() + 30
    while (await store.require_agent(task.agent_id)).state != AgentState.RUNNING:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    late.cancel("spawner stopping")
    assert await late is Verdict.HAND_BACK
    record = await store.require_agent(task.agent_id)
    assert (record.state, record.task_state, record.attempts) == (
        AgentState.SPAWNING,
        TaskState.PENDING,
        1,
    )
    assert record.attempt_reasons[-1] == "handed back: its spawner stopped"


async def test_a_model_api_failing_past_its_retries_is_retried_up_to_max_retries(
    make_spawner: Callable[..., Awaitable[Spawner]],
    remote_repo: Path,
    fake_messages_api: FakeMessagesAPI,  # noqa: F811
    fake_model_settings: ModelSettings,  # noqa: F811
) -> None:
    spawner = await make_spawner("spawner-model", model=fake_model_settings)
    store = spawner.ctx.tracker.store
    task = await queue_agent(store, remote_repo, "overloaded1", [], maxRetries=1)
    fake_messages_api.enqueue(*[overloaded() for _ in range(20)])

    assert await (await _start(spawner, task)) is Verdict.RETRY
    record = await store.require_agent(task.agent_id)
    assert (record.task_state, record.attempts) == (TaskState.PENDING, 1)

    assert await (await _start(spawner, task)) is Verdict.DONE
    record = await store.require_agent(task.agent_id)
    assert (record.state, record.task_state, record.attempts) == (
        AgentState.FAILED,
        TaskState.FAILED,
        2,
    )
    assert len(record.attempt_reasons) == 2
    assert all("the model API kept failing" in r for r in record.attempt_reasons)
    assert record.attempt_reasons[0].startswith("attempt 1: ")


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_valkey(tmp_path / "valkey")
    yield server
    server.stop()


@pytest.fixture
def valkey_url(own_valkey: ServerProcess) -> str:
    return f"redis://127.0.0.1:{own_valkey.port}/0"


async def test_valkey_lost_inside_an_attempt_is_a_retryable_failure(
    make_spawner: Callable[..., Awaitable[Spawner]], remote_repo: Path, own_valkey: ServerProcess
) -> None:
    spawner = await make_spawner("spawner-valkey")
    store = spawner.ctx.tracker.store
    task = await queue_agent(store, remote_repo, "valkey1", SLEEPER)
    attempt = await spawner.worker._claim(task)
    assert attempt == 1
    own_valkey.stop()  # gone between the claim and the attempt's first state change

    current = asyncio.current_task()
    assert current is not None
    running = Running(task.agent_id, task.request.task_id, current)
    # returns a verdict (the message goes back with a delay) instead of raising
    assert await AgentRun(spawner.ctx, task, running, attempt).execute() is Verdict.RETRY

    own_valkey.restart()
    record = await store.require_agent(task.agent_id)  # AOF: the claim survived
    assert (record.task_state, record.attempts) == (TaskState.ASSIGNED, 1)
    assert await spawner.worker._claim(task) == 2  # the redelivery starts attempt 2
    record = await store.require_agent(task.agent_id)
    assert record.attempt_reasons == ["attempt 1: its spawner stopped mid-run"]
