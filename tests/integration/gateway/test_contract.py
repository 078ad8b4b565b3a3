"""Contract of every gateway path: success, each error status, and auth.

Errors always have the one shape ``{"error": {"code", "message", "field"?}}``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.msg import Msg

from services.gateway.app import create_app
from services.gateway.auth import GatewayConfigError
from services.gateway.settings import GatewaySettings
from shared import subjects
from shared.messages.agents import AgentState, TaskState
from shared.messages.base import utcnow
from tests.integration.gateway.conftest import (
    ADMIN,
    OPERATOR,
    Gateway,
    spawn_body,
    start_gateway,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field
        assert body["error"]["message"].startswith(field)


async def spawned(client: httpx.AsyncClient, repo: Path, task_id: str) -> str:
    answer = await client.post("/agents/spawn", json=spawn_body(repo, task_id))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"])


@pytest.fixture
async def killswitch(gateway: Gateway) -> AsyncIterator[list[str]]:
    """Stands in for the killswitch service: a kill order moves the agent to ``killed``."""
    killed: list[str] = []
    nc = gateway.broker.connection

    async def kill(agent_id: str) -> None:
        record = await gateway.store.get_agent(agent_id)
        if record is None or record.state.value in ("completed", "failed", "killed"):
            return
        await gateway.tracker.transition(
            agent_id,
            task_id=record.task_id,
            agent=AgentState.KILLED,
            task=TaskState.FAILED,
            fields={"completed_at": utcnow(), "error": "killed: test"},  # as the real one does
            detail={"reason": "test"},
        )
        killed.append(agent_id)

    async def on_one(msg: Msg) -> None:
        await kill(msg.subject.rsplit(".", 1)[-1])

    async def on_all(_: Msg) -> None:
        for agent_id in await gateway.store.list_agent_ids(0, 1000):
            await kill(agent_id)

    subs = [
        await nc.subscribe(subjects.KILL_AGENT_ANY, cb=on_one),
        await nc.subscribe(subjects.KILL_ALL, cb=on_all),
    ]
    yield killed
    for sub in subs:
        await sub.unsubscribe()


# ---- open paths ---------------------------------------------------------------------


async def test_health_is_open_and_shaped_as_the_spec(gateway: Gateway) -> None:
    async with gateway.client(None) as anonymous:
        body = (await anonymous.get("/health")).json()
    assert body["status"] == "healthy"
    assert body["uptime"] >= 0
    assert "T" in body["timestamp"]
    assert body["qualityGatesDisabled"] is False
    assert body["checks"] == {"nats": "ok", "valkey": "ok"}


async def test_health_shows_yolo(nats_url: str, valkey_url: str, unique: str) -> None:
    gw, server, task = await start_gateway(nats_url, valkey_url, f"y{unique}", yolo=True)
    try:
        async with gw.client(None) as anonymous:
            assert (await anonymous.get("/health")).json()["qualityGatesDisabled"] is True
    finally:
        server.should_exit = True
        await task


async def test_dashboard_shell_is_open_and_holds_no_data(gateway: Gateway) -> None:
    async with gateway.client(None) as anonymous:
        page = await anonymous.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert OPERATOR not in page.text
        script = await anonymous.get("/dashboard/app.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert (await anonymous.get("/dashboard/style.css")).status_code == 200
        assert_error(await anonymous.get("/dashboard/secrets.txt"), 404, "not_found")


async def test_openapi_documents_every_path_and_the_error_shape(gateway: Gateway) -> None:
    async with gateway.client(None) as anonymous:
        doc = (await anonymous.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in (
        "/health",
        "/auth/whoami",
        "/agents/spawn",
        "/agents",
        "/agents/{agent_id}/status",
        "/agents/{agent_id}/events",
        "/agents/{agent_id}/kill",
        "/agents/kill-all",
        "/events/stream",
        "/metrics",
    ):
        assert path in paths, path
    assert "ErrorResponse" in doc["components"]["schemas"]
    assert "SpawnAgentRequest" in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    kill_all = paths["/agents/kill-all"]["post"]["responses"]
    assert {"200", "401", "403"} <= set(kill_all)
    assert paths["/agents/spawn"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    for path, methods in paths.items():
        if path == "/health":
            continue
        for operation in methods.values():
            assert "401" in operation["responses"], path


# ---- auth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/whoami"),
        ("POST", "/agents/spawn"),
        ("GET", "/agents"),
        ("GET", "/agents/abc/status"),
        ("GET", "/agents/abc/events"),
        ("POST", "/agents/abc/kill"),
        ("POST", "/agents/kill-all"),
        ("GET", "/agents/hold"),
        ("POST", "/agents/resume"),
        ("GET", "/queue"),
        ("GET", "/metrics"),
        ("GET", "/events/stream"),
    ],
)
async def test_every_path_needs_a_valid_token(gateway: Gateway, method: str, path: str) -> None:
    async with gateway.client(None) as anonymous:
        missing = await anonymous.request(method, path)
        assert_error(missing, 401, "unauthorized")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await anonymous.request(method, path, headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401, "unauthorized")
        basic = await anonymous.request(method, path, headers={"Authorization": "Basic eDp5"})
        assert_error(basic, 401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/agents/kill-all"), ("POST", "/agents/resume")]
)
async def test_operator_is_refused_on_admin_paths(
    operator: httpx.AsyncClient, method: str, path: str
) -> None:
    assert_error(await operator.request(method, path), 403, "forbidden")


async def test_whoami_names_the_role(operator: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    assert (await operator.get("/auth/whoami")).json() == {"role": "operator"}
    assert (await admin.get("/auth/whoami")).json() == {"role": "admin"}


def test_refuses_to_start_without_any_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOSAIC_API_TOKEN", raising=False)
    monkeypatch.delenv("MOSAIC_ADMIN_TOKEN", raising=False)
    with pytest.raises(GatewayConfigError, match="MOSAIC_API_TOKEN"):
        create_app(GatewaySettings())
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_PORT": "1", "LOG_FORMAT": "text"}
    done = subprocess.run(
        [sys.executable, "-m", "services.gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parents[3],
        check=False,
    )
    assert done.returncode == 2
    assert "no API token configured" in done.stderr


def test_one_token_is_enough() -> None:
    create_app(GatewaySettings(mosaic_api_token="x" * 20, mosaic_admin_token=None))


# ---- spawn --------------------------------------------------------------------------


async def test_spawn_accepts_then_answers_duplicates(
    operator: httpx.AsyncClient, remote_repo: Path, unique: str
) -> None:
    first = await operator.post("/agents/spawn", json=spawn_body(remote_repo, f"s-{unique}"))
    assert first.status_code == 202
    body = first.json()
    assert body["state"] == "spawning"
    assert body["taskState"] == "pending"
    assert body["duplicate"] is False
    again = await operator.post("/agents/spawn", json=spawn_body(remote_repo, f"s-{unique}"))
    assert again.status_code == 200
    assert again.json()["agentId"] == body["agentId"]
    assert again.json()["duplicate"] is True
    events = (await operator.get(f"/agents/{body['agentId']}/events")).json()
    assert [(e["seq"], e["state"]) for e in events] == [(1, "spawning")]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(priority=0), "priority"),
        (lambda b: b.update(priority="high"), "priority"),
        (lambda b: b.update(agentType="hacker"), "agentType"),
        (lambda b: b.update(gateProfile="none"), "gateProfile"),
        (lambda b: b.pop("taskId"), "taskId"),
        (lambda b: b.update(taskId="-x"), "taskId"),
        (lambda b: b.update(taskId="x" * 200), "taskId"),
        # gitops' limits, once only gitops' (a 202 and then a failed spawn): shared.ids
        (lambda b: b.update(taskId="x" * 101), "taskId"),
        (lambda b: b.update(taskId="a..b"), "taskId"),
        (lambda b: b.update(taskId="fix.lock"), "taskId"),
        (lambda b: b["context"].update(workItems=[]), "context.workItems"),
        (lambda b: b["context"].update(workItems=["x"] * 101), "context.workItems"),
        (lambda b: b["context"].update(workItems=["x" * 20_001]), "context.workItems.0"),
        (lambda b: b["context"].update(repository="ext::sh -c x"), "context.repository"),
        (lambda b: b["context"].update(branch="a..b"), "context.branch"),
        (lambda b: b["context"].update(extra=1), "context.extra"),
        (lambda b: b.update(options={"timeout": 0}), "options.timeout"),
        (lambda b: b.update(options={"merge": "squash"}), "options.merge"),
        (lambda b: b.update(options={"merge": None}), "options.merge"),
        (lambda b: b.update(surprise=1), "surprise"),
    ],
)
async def test_spawn_refuses_bad_input_naming_the_field(
    gateway: Gateway,
    operator: httpx.AsyncClient,
    remote_repo: Path,
    unique: str,
    mutate: Any,
    field: str,
) -> None:
    body = spawn_body(remote_repo, f"bad-{unique}")
    mutate(body)
    answer = await operator.post("/agents/spawn", json=body)
    assert_error(answer, 422, "invalid_request", field)
    assert answer.json()["error"]["details"][0]["field"] == field
    assert await gateway.store.count_agents() == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://bot:{token}@git.example.com/team/repo.git",
        "https://{token}@git.example.com/team/repo.git",
        "ssh://git:{token}@git.example.com/team/repo.git",
    ],
)
async def test_spawn_refuses_credentials_in_the_repository_url(
    gateway: Gateway, operator: httpx.AsyncClient, unique: str, url: str
) -> None:
    """A token in the URL would be stored in the task record and shown in events: refused."""
    token = "ghp_" + "Zq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1Aq4Zx7Cv0Bn3"
    body = spawn_body("/unused", f"cred-{unique}")
    body["context"]["repository"] = url.format(token=token)
    answer = await operator.post("/agents/spawn", json=body)
    assert_error(answer, 422, "invalid_request", "context.repository")
    assert answer.json()["error"]["details"][0]["field"] == "context.repository"
    assert token not in answer.text
    assert await gateway.store.count_agents() == 0


async def test_spawn_refuses_a_missing_local_repository(
    gateway: Gateway, operator: httpx.AsyncClient, tmp_path: Path, unique: str
) -> None:
    answer = await operator.post("/agents/spawn", json=spawn_body(tmp_path / "no", f"m-{unique}"))
    assert_error(answer, 422, "invalid_request", "context.repository")
    assert await gateway.store.count_agents() == 0


async def test_spawn_refuses_malformed_and_oversized_bodies(
    gateway: Gateway, operator: httpx.AsyncClient
) -> None:
    json_header = {"Content-Type": "application/json"}
    malformed = await operator.post("/agents/spawn", content=b"{nope", headers=json_header)
    assert_error(malformed, 422, "invalid_request")
    not_object = await operator.post("/agents/spawn", json=[1, 2])
    assert_error(not_object, 422, "invalid_request")
    big = b'{"taskId": "' + b"x" * 1_100_000 + b'"}'
    assert_error(
        await operator.post("/agents/spawn", content=big, headers=json_header),
        413,
        "payload_too_large",
    )

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(30):
            yield b" " * 50_000

    streamed = await operator.post("/agents/spawn", content=chunks(), headers=json_header)
    assert_error(streamed, 413, "payload_too_large")
    assert await gateway.store.count_agents() == 0


# ---- list, status, events -----------------------------------------------------------


async def test_list_filters_and_pages(
    gateway: Gateway, operator: httpx.AsyncClient, remote_repo: Path, unique: str
) -> None:
    ids = [await spawned(operator, remote_repo, f"l{i}-{unique}") for i in range(3)]
    record = await gateway.store.require_agent(ids[0])
    await gateway.tracker.transition(ids[0], task_id=record.task_id, agent=AgentState.RUNNING)
    page = (await operator.get("/agents")).json()
    assert page["total"] == 3
    assert [a["agentId"] for a in page["agents"]] == ids[::-1]
    second = (await operator.get("/agents", params={"offset": 1, "limit": 1})).json()
    assert [a["agentId"] for a in second["agents"]] == [ids[1]]
    assert second["total"] == 3
    running = (await operator.get("/agents", params={"state": "running"})).json()
    assert [a["agentId"] for a in running["agents"]] == [ids[0]]
    assert running["total"] == 1
    by_task = (await operator.get("/agents", params={"taskId": f"l2-{unique}"})).json()
    assert [a["agentId"] for a in by_task["agents"]] == [ids[2]]
    none = (await operator.get("/agents", params={"taskId": "unknown"})).json()
    assert none == {"agents": [], "total": 0, "offset": 0, "limit": 50}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "sleeping"}, "state"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"taskId": "x" * 129}, "taskId"),
    ],
)
async def test_list_refuses_bad_query(
    operator: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    assert_error(await operator.get("/agents", params=params), 422, "invalid_request", field)


async def test_status_and_events(
    operator: httpx.AsyncClient, remote_repo: Path, unique: str
) -> None:
    agent_id = await spawned(operator, remote_repo, f"st-{unique}")
    record = (await operator.get(f"/agents/{agent_id}/status")).json()
    assert record["agentId"] == agent_id
    assert record["taskId"] == f"st-{unique}"
    assert record["repository"] == str(remote_repo)
    events = (await operator.get(f"/agents/{agent_id}/events")).json()
    assert events[0]["agentId"] == agent_id
    assert_error(await operator.get("/agents/unknown/status"), 404, "not_found")
    assert_error(await operator.get("/agents/unknown/events"), 404, "not_found")
    assert_error(await operator.get("/agents/bad%20id/status"), 422, "invalid_request", "agent_id")


# ---- kill ---------------------------------------------------------------------------


async def test_kill_one(
    operator: httpx.AsyncClient, killswitch: list[str], remote_repo: Path, unique: str
) -> None:
    agent_id = await spawned(operator, remote_repo, f"k-{unique}")
    answer = await operator.post(f"/agents/{agent_id}/kill")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["agentId"] == agent_id
    assert body["killed"] is True
    assert body["state"] == "killed"
    assert body["elapsedMs"] >= 0  # its speed is a benchmark (loadtests), not a test
    assert killswitch == [agent_id]
    again = (await operator.post(f"/agents/{agent_id}/kill")).json()
    assert again["state"] == "killed"
    assert_error(await operator.post("/agents/unknown/kill"), 404, "not_found")


async def test_kill_without_a_killswitch_reports_the_state_after_the_wait(
    operator: httpx.AsyncClient, remote_repo: Path, unique: str
) -> None:
    agent_id = await spawned(operator, remote_repo, f"kw-{unique}")
    body = (await operator.post(f"/agents/{agent_id}/kill")).json()
    assert body == {**body, "killed": False, "state": "spawning"}


async def test_kill_all_is_for_admins(
    gateway: Gateway,
    operator: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    killswitch: list[str],
    remote_repo: Path,
    unique: str,
) -> None:
    ids = {await spawned(operator, remote_repo, f"ka{i}-{unique}") for i in range(2)}
    for agent_id in ids:  # running agents (queued ones wait for resume instead)
        record = await gateway.store.require_agent(agent_id)
        await gateway.tracker.transition(
            agent_id, task_id=record.task_id, agent=AgentState.RUNNING, task=TaskState.ASSIGNED
        )
    assert_error(await operator.post("/agents/kill-all"), 403, "forbidden")
    assert killswitch == []
    answer = await admin.post("/agents/kill-all")
    assert answer.status_code == 200, answer.text
    results = answer.json()
    assert {r["agentId"] for r in results} == ids
    assert all(r["killed"] for r in results)
    assert (await admin.post("/agents/kill-all")).json() == []


# ---- hold, queue, metrics, unknown paths --------------------------------------------


async def test_hold_and_resume(operator: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    assert (await operator.get("/agents/hold")).json()["held"] is False
    assert (await admin.post("/agents/resume")).json()["held"] is False


async def test_queue_counts(operator: httpx.AsyncClient, remote_repo: Path, unique: str) -> None:
    await spawned(operator, remote_repo, f"q-{unique}")
    body = (await operator.get("/queue")).json()
    assert body["pending"] == 1
    assert body["agentsByState"] == {"spawning": 1}


async def test_metrics_in_prometheus_format(
    gateway: Gateway, operator: httpx.AsyncClient, remote_repo: Path, unique: str
) -> None:
    await spawned(operator, remote_repo, f"mx-{unique}")
    await operator.get("/agents/unknown/status")
    answer = await operator.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'mosaic_agents{state="spawning"} 1.0' in text
    assert 'mosaic_agents{state="running"} 0.0' in text
    assert 'mosaic_tasks{state="pending"} 1.0' in text
    assert "mosaic_gateway_spawn_accept_seconds_count 1.0" in text
    assert (
        'mosaic_gateway_http_requests_total{method="GET",route="/agents/{agent_id}/status",'
        'status="404"} 1.0'
    ) in text
    assert 'mosaic_gateway_feed_clients{transport="sse"} 0.0' in text
    assert "mosaic_gateway_events_streamed_total" in text
    assert OPERATOR not in text
    assert ADMIN not in text


async def test_unknown_paths_and_methods_have_the_error_shape(
    operator: httpx.AsyncClient,
) -> None:
    assert_error(await operator.get("/nowhere"), 404, "not_found")
    assert_error(await operator.get("/agents/abc"), 404, "not_found")
    wrong = await operator.delete("/agents/spawn")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST"
    assert_error(await operator.put("/health"), 405, "method_not_allowed")


async def test_requests_do_not_block_each_other(
    operator: httpx.AsyncClient, remote_repo: Path, unique: str
) -> None:
    answers = await asyncio.gather(
        *(
            operator.post("/agents/spawn", json=spawn_body(remote_repo, f"c{i}-{unique}"))
            for i in range(20)
        )
    )
    assert [a.status_code for a in answers] == [202] * 20
    assert (await operator.get("/agents", params={"limit": 100})).json()["total"] == 20
