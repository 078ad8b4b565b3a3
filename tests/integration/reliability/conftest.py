"""Two spawner run contexts against one real nats-server, Valkey and gitops service.

Each context is what a spawner process builds in ``services.spawner.app.serve``, minus
the intake: tests claim and run attempts themselves, so they can interleave two spawners
at exactly the moment that matters.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from services.gitops.app import create_app
from services.gitops.settings import GitOpsSettings
from services.spawner.agent_run import RunContext
from services.spawner.clients import Gates, GitOps
from services.spawner.kills import KillRegistry
from services.spawner.settings import SpawnerSettings
from services.spawner.worker import Worker
from shared.bus import make_broker
from shared.messages.agents import AgentRecord, AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.tasks import SpawnAgentRequest, TaskQueued
from shared.sandbox.host import HostSandboxFactory
from shared.settings import (
    GitSettings,
    HomeSettings,
    ModelSettings,
    NatsSettings,
    QualitySettings,
    host_id,
)
from shared.store import StateStore
from shared.tracker import AgentTracker


@dataclass
class Spawner:
    """One spawner's run context and worker (its own NATS connection)."""

    ctx: RunContext
    worker: Worker
    broker: NatsBroker


@pytest.fixture
def bus_url(nats_url: str) -> str:
    """The NATS server of the test (a test that stops its server overrides this)."""
    return nats_url


@pytest.fixture
async def gitops_home(tmp_path: Path, bus_url: str) -> AsyncIterator[Path]:
    """A running gitops service; yields its home (``<home>/repos`` is the cache)."""
    home = tmp_path / "gitops-home"
    app = create_app(
        NatsSettings(nats_url=bus_url),
        HomeSettings(mosaic_home=home),
        GitSettings(git_author_name="Fence Agent", git_author_email="fence@test.invalid"),
        GitOpsSettings(network_timeout=20, local_timeout=20),
    )
    assert app.broker is not None
    await app.broker.start()
    yield home
    with contextlib.suppress(nats.errors.Error):  # as in make_spawner
        await app.broker.stop()


@pytest.fixture
async def make_spawner(
    bus_url: str, valkey_url: str, unique: str, tmp_path: Path, gitops_home: Path
) -> AsyncIterator[Callable[..., Awaitable[Spawner]]]:
    opened: list[tuple[NatsBroker, Redis]] = []

    async def make(name: str, model: ModelSettings | None = None, **settings: Any) -> Spawner:
        broker = make_broker(NatsSettings(nats_url=bus_url), name)
        await broker.start()
        redis = Redis.from_url(valkey_url)
        opened.append((broker, redis))
        spawner_settings = SpawnerSettings(**settings)
        store = StateStore(redis, prefix=f"t{unique}")
        ctx = RunContext(
            tracker=AgentTracker(store, broker),
            gitops=GitOps(broker, 30, host_id()),
            gates=Gates(broker, 5, 1, host_id()),
            sandboxes=HostSandboxFactory(tmp_path),
            model=model or ModelSettings(mosaic_provider="scripted"),
            quality=QualitySettings(),
            settings=spawner_settings,
            instance=name,
        )
        worker = Worker(ctx, KillRegistry(), broker.connection)
        return Spawner(ctx, worker, broker)

    yield make
    for broker, redis in opened:
        # a test may have stopped the server: closing a reconnecting client then raises
        with contextlib.suppress(nats.errors.Error):
            await broker.stop()
        await redis.aclose()


async def queue_agent(
    store: StateStore, repo: Path, agent_id: str, plan: list[dict[str, Any]], **options: Any
) -> TaskQueued:
    """The record the gateway creates and the message it queues (not published here)."""
    request = SpawnAgentRequest.model_validate(
        {
            "taskId": f"task-{agent_id}",
            "agentType": "worker",
            "context": {"repository": str(repo), "branch": "main", "workItems": ["fence"]},
            "options": {"plan": plan, **options},
            "gateProfile": "minimal",
        }
    )
    await store.create_agent(
        AgentRecord(
            agent_id=agent_id,
            task_id=request.task_id,
            agent_type="worker",
            state=AgentState.SPAWNING,
            task_state=TaskState.PENDING,
            repository=str(repo),
            branch="main",
            priority=5,
            gate_profile="minimal",
            created_at=utcnow(),
        )
    )
    return TaskQueued(agent_id=agent_id, request=request, queued_at=utcnow())
