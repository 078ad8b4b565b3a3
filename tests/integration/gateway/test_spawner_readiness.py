"""The gateway's side of spawner readiness, against a real gateway and Valkey: capability
records are written with ``SpawnerRegistry`` as a spawner's heartbeat writes them (the
spawner processes themselves are in ``tests/integration/test_no_fallback.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mosaic.cli import main
from mosaic.client import AsyncMosaicClient, UnavailableError
from shared.messages.agents import AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.spawners import SpawnerCapability
from shared.spawners import SpawnerRegistry
from tests.integration.gateway.conftest import OPERATOR, Gateway, spawn_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NO_MODEL = "no model: set ANTHROPIC_API_KEY (or CLAUDE_API_KEY) or MOSAIC_PROVIDER=scripted"


def capability(instance: str, *, ready: bool, unsafe: bool = False) -> SpawnerCapability:
    now = utcnow()
    return SpawnerCapability(
        instance=instance,
        ready=ready,
        problems=[] if ready else [NO_MODEL],
        sandbox="none" if unsafe else "docker",
        unsafe=unsafe,
        environment="host tools (no sandbox)" if unsafe else "image mosaic/sandbox:latest",
        provider="scripted" if ready else None,
        model="scripted" if ready else None,
        slots=4 if ready else 0,
        started_at=now,
        expires_at=now,
    )


def registry(gateway: Gateway) -> SpawnerRegistry:
    return SpawnerRegistry(gateway.store.redis, gateway.store.prefix)


async def test_not_ready_spawners_refuse_spawn_with_their_reason_and_store_nothing(
    gateway: Gateway, remote_repo: Path, unique: str
) -> None:
    spawners = registry(gateway)
    await spawners.publish(capability("spawner-a", ready=False), ttl_s=30)
    async with AsyncMosaicClient(gateway.url, OPERATOR, backoff=5) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(UnavailableError) as refused:
            await client.spawn_agent(spawn_body(remote_repo, f"r-{unique}"))
        # not retried: waiting does not install a sandbox or set a key
        assert asyncio.get_running_loop().time() - started < 2
        assert refused.value.status == 503
        assert refused.value.code == "no_spawner_ready"
        assert NO_MODEL in refused.value.message
        assert (await client.list_agents()).total == 0
        health = await client.health()
    assert await gateway.store.agent_for_task(f"r-{unique}") is None
    assert health["status"] == "healthy"  # the gateway itself is fine
    assert [s["instance"] for s in health["spawners"]] == ["spawner-a"]
    assert any(NO_MODEL in w for w in health["warnings"])


async def test_one_ready_spawner_is_enough_and_dead_ones_do_not_count(
    gateway: Gateway, remote_repo: Path, unique: str
) -> None:
    spawners = registry(gateway)
    await spawners.publish(capability("spawner-a", ready=False), ttl_s=30)
    await spawners.publish(capability("spawner-b", ready=True, unsafe=True), ttl_s=30)
    async with gateway.client() as http:
        answer = await http.post("/agents/spawn", json=spawn_body(remote_repo, f"a-{unique}"))
        assert answer.status_code == 202, answer.text
        health = (await http.get("/health")).json()
        assert health["unsafe"] is True
        assert any("UNSAFE" in w and "spawner-b" in w for w in health["warnings"])
        assert any("spawner-a runs no agent" in w for w in health["warnings"])
        # the ready one dies (its heartbeat stops): only the not-ready one is left
        await spawners.publish(capability("spawner-b", ready=True, unsafe=True), ttl_s=-1)
        answer = await http.post("/agents/spawn", json=spawn_body(remote_repo, f"b-{unique}"))
        assert answer.status_code == 503, answer.text
        health = (await http.get("/health")).json()
        assert [s["instance"] for s in health["spawners"]] == ["spawner-a"]
        assert health["unsafe"] is False
        # a duplicate of a known task still answers with its agent
        again = await http.post("/agents/spawn", json=spawn_body(remote_repo, f"a-{unique}"))
        assert again.status_code == 200, again.text
        # the not-ready one stops cleanly: no spawner at all, the task is queued for later
        await spawners.withdraw("spawner-a")
        answer = await http.post("/agents/spawn", json=spawn_body(remote_repo, f"c-{unique}"))
        assert answer.status_code == 202, answer.text
        assert any(
            "no spawner is running" in w for w in (await http.get("/health")).json()["warnings"]
        )
    assert await spawners.prune(expired_for_s=0) == 1  # spawner-b's stale record
    assert await spawners.all() == []


async def test_cli_shows_what_ran_an_agent(
    gateway: Gateway,
    remote_repo: Path,
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with gateway.client() as http:
        answer = await http.post("/agents/spawn", json=spawn_body(remote_repo, f"s-{unique}"))
    agent_id = answer.json()["agentId"]
    # what the spawner records when the attempt starts
    await gateway.tracker.transition(
        agent_id, task_id=f"s-{unique}", task=TaskState.ASSIGNED, fields={"spawner": "sp-1"}
    )
    await gateway.tracker.transition(
        agent_id,
        task_id=f"s-{unique}",
        agent=AgentState.RUNNING,
        task=TaskState.EXECUTING,
        fields={
            "sandbox": "none",
            "unsafe": True,
            "environment": "host tools (no sandbox)",
            "provider": "anthropic",
            "model": "claude-test",
        },
    )
    monkeypatch.delenv("MOSAIC_TOKEN", raising=False)
    url = ["--url", gateway.url, "--token", OPERATOR]

    def run(*argv: str) -> str:
        assert main(list(argv)) == 0
        return capsys.readouterr().out

    table = await asyncio.to_thread(run, "agents", *url)
    assert "SANDBOX" in table
    assert "none (UNSAFE)" in table
    assert "claude-test" in table
    status = await asyncio.to_thread(run, "status", *url, agent_id)
    assert "host tools (no sandbox)" in status
    assert "anthropic" in status
    assert "WARNING: this agent ran without a sandbox" in status
    record = await asyncio.to_thread(run, "status", *url, agent_id, "--json")
    assert '"unsafe": true' in record
