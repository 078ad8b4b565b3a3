"""The Python client (typed errors, bounded retries on 503) and the ``mosaic`` client
commands, against a real gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from mosaic.cli import main
from mosaic.client import (
    AsyncMosaicClient,
    AuthError,
    InvalidRequestError,
    MosaicClient,
    NotFoundError,
    UnavailableError,
)
from mosaic.embedded import free_port
from shared.kill_metrics import KILLS, MetricsSettings, serve_metrics
from shared.messages.agents import AgentPatch
from tests.integration.gateway.conftest import OPERATOR, CliRun, Gateway, spawn_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def flaky(failures: int, calls: list[int]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= failures:
            body = {"error": {"code": "unavailable", "message": "valkey down"}}
            return httpx.Response(503, json=body, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"role": "admin"})

    return httpx.MockTransport(answer)


def test_client_retries_503_with_a_bound() -> None:
    calls: list[int] = []
    client = MosaicClient("http://gw", "t", backoff=0.001, transport=flaky(2, calls))
    assert client.whoami() == "admin"
    assert len(calls) == 3
    calls.clear()
    client = MosaicClient("http://gw", "t", retries=2, backoff=0.001, transport=flaky(99, calls))
    with pytest.raises(UnavailableError) as failed:
        client.whoami()
    assert failed.value.status == 503
    assert failed.value.message == "valkey down"
    assert len(calls) == 3


def test_client_reports_an_unreachable_gateway() -> None:
    client = MosaicClient(f"http://127.0.0.1:{free_port()}", "t", retries=1, backoff=0.001)
    with pytest.raises(UnavailableError) as failed:
        client.health()
    assert failed.value.status == 0


async def test_async_client_typed_errors(gateway: Gateway, remote_repo: Path, unique: str) -> None:
    async with AsyncMosaicClient(gateway.url, OPERATOR) as client:
        spawned = await client.spawn_agent(spawn_body(remote_repo, f"c-{unique}"))
        record = await client.get_agent_status(spawned.agent_id)
        assert record.task_id == f"c-{unique}"
        assert (await client.list_agents(task_id=f"c-{unique}")).total == 1
        assert [e.seq for e in await client.get_agent_events(spawned.agent_id)] == [1]
        with pytest.raises(NotFoundError):
            await client.get_agent_status("nobody")
        with pytest.raises(InvalidRequestError) as invalid:
            await client.spawn_agent({**spawn_body(remote_repo, "x"), "priority": 99})
        assert invalid.value.field == "priority"
        with pytest.raises(AuthError) as forbidden:
            await client.kill_all_agents()
        assert forbidden.value.status == 403
    async with AsyncMosaicClient(gateway.url, "wrong") as client:
        with pytest.raises(AuthError) as unauthorized:
            await client.whoami()
        assert unauthorized.value.status == 401


async def test_cli_commands(
    gateway: Gateway,
    remote_repo: Path,
    unique: str,
    cli: CliRun,
) -> None:
    url = ["--url", gateway.url]
    run = cli

    code, out, _ = await run(
        "spawn", *url, "--repo", str(remote_repo), "--item", "Add a greeting",
        "--priority", "3", "--profile", "minimal", "--task-id", f"cli-{unique}", "--json",
    )  # fmt: skip
    assert code == 0
    agent_id = json.loads(out)["agentId"]
    code, out, _ = await run("agents", *url, "--state", "spawning")
    assert code == 0
    assert agent_id in out
    assert "1-1 of 1" in out
    code, out, _ = await run("status", *url, agent_id)
    assert code == 0
    assert f"cli-{unique}" in out
    code, out, err = await run("status", *url, "nobody")
    assert code == 1
    assert "404" in err
    code, _, err = await run("spawn", *url, "--repo", "ext::sh", "--item", "x")
    assert code == 1
    assert "context.repository" in err
    code, out, _ = await run("kill", *url, agent_id, "--json")
    assert code == 1, out  # no killswitch runs here: the agent is still spawning
    assert json.loads(out)[0]["agentId"] == agent_id
    code, out, err = await run("kill", *url, "--all")  # the admin token from its file
    assert code == 0, err
    code, _, err = await run("kill", *url, "--all", "--token", OPERATOR)
    assert code == 1
    assert "403" in err
    code, _, err = await run("kill", *url)
    assert code == 2


async def test_cli_spawns_into_the_merge_queue_and_shows_the_position(
    gateway: Gateway,
    remote_repo: Path,
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    (home / "secrets").mkdir(parents=True)
    (home / "secrets" / "api-token").write_text(OPERATOR)
    monkeypatch.delenv("MOSAIC_TOKEN", raising=False)
    argv = ["--home", str(home)]
    url = ["--url", gateway.url]

    async def run(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*argv, *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await run(
        "spawn", *url, "--repo", str(remote_repo), "--item", "x", "--merge", "queue", "--json"
    )
    assert code == 0, err
    agent_id = json.loads(out)["agentId"]
    with pytest.raises(SystemExit):
        await run("spawn", *url, "--repo", str(remote_repo), "--item", "x", "--merge", "squash")
    assert "squash" in capsys.readouterr().err
    # what the spawner writes while the agent waits, then after its merge
    await gateway.store.update(agent_id, AgentPatch(merge_queue_position=3))
    code, out, _ = await run("agents", *url)
    assert "MERGE" in out
    assert "queue #3" in out
    code, out, _ = await run("status", *url, agent_id)
    assert "mergeQueuePosition  3" in out
    merged = f"{'a' * 40}..{'b' * 40}"
    await gateway.store.update(agent_id, AgentPatch(merge_queue_position=None, merged_range=merged))
    code, out, _ = await run("agents", *url)
    assert "merged aaaaaaa..bbbbbbb" in out
    assert "queue #" not in out


def test_services_serve_their_metrics() -> None:
    """Spawner and killswitch serve their process metrics on ``MOSAIC_METRICS_PORT``."""
    assert serve_metrics(MetricsSettings(mosaic_metrics_port=None)) is None
    KILLS.labels("test", "test", "agent").inc()
    port = free_port()
    assert serve_metrics(MetricsSettings(mosaic_metrics_port=port)) == port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'mosaic_kills_total{by="test",scope="agent",service="test"} 1.0' in text


async def test_cli_operations_commands(
    gateway: Gateway,
    remote_repo: Path,
    unique: str,
    cli: CliRun,
) -> None:
    """Every HTTP operation has its command: queue, events, hold, resume, audit, check."""
    url = ["--url", gateway.url]
    run = cli

    code, out, err = await run(
        "spawn", *url, "--repo", str(remote_repo), "--item", "x", "--task-id", f"ops-{unique}",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    agent_id = json.loads(out)["agentId"]

    code, out, err = await run("queue", *url, "--json")
    assert code == 0, err
    assert json.loads(out)["pending"] >= 1
    code, out, _ = await run("queue", *url)
    assert "pending" in out

    code, out, err = await run("events", *url, agent_id)
    assert code == 0, err
    assert "agent -> spawning" in out or "spawning" in out
    code, _, err = await run("events", *url, "nobody")
    assert code == 1
    assert "404" in err

    code, out, _ = await run("hold", *url)
    assert (code, out.strip()) == (0, "no hold: queued tasks start")
    # what the killswitch does on a kill-all (no killswitch runs here)
    await gateway.store.hold_all("kill-all via HTTP", "http:admin")
    code, out, _ = await run("hold", *url, "--json")
    assert json.loads(out)["held"] is True
    code, out, _ = await run("hold", *url)
    assert out.startswith("HELD")

    code, _, err = await run("resume", *url, "--token", OPERATOR)
    assert code == 1
    assert "403" in err
    code, out, err = await run("resume", *url)  # the admin token from its file
    assert code == 0, err
    assert "no hold" in out

    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the audit stream is written asynchronously
        code, out, err = await run("audit", *url, "--kind", "resume", "--json")
        assert code == 0, err
        if json.loads(out) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert json.loads(out)[0]["actor"] == "http:admin"
    code, out, _ = await run("audit", *url, "--kind", "resume")
    assert "http:admin" in out

    code, _, err = await run("check", *url, "--agent", "nobody")
    assert code == 1
    assert "404" in err
    with pytest.raises(SystemExit):
        await run("check", *url)  # an agent or a worktree is required
