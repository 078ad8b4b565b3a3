"""The walking skeleton end to end: five service processes over real NATS and Valkey.

HTTP spawn -> JetStream -> spawner -> gitops worktree -> scripted agent -> gates ->
commit -> push to a bare remote -> completed, worktree removed.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.conftest import git
from tests.systems import operator_http, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FINAL = {"completed", "failed", "killed"}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    home = tmp_path_factory.mktemp("home")
    config = SystemConfig(
        home=home,
        gateway_port=free_port(),
        env={"MOSAIC_PROVIDER": "scripted", "MOSAIC_SANDBOX": "none", "TASK_ACK_WAIT_S": "5"},
    )
    with Supervisor(config) as supervisor:
        yield supervisor


@pytest.fixture
def http(system: Supervisor) -> Iterator[httpx.Client]:
    with operator_http(system, 10) as client:
        yield client


def spawn_body(repo: Path, task_id: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": ["Add a greeting"]},
        "options": {
            "plan": [
                {
                    "tool": "write_file",
                    "input": {"path": "hello.py", "content": "print('hello')\n"},
                },
                {"tool": "finish", "input": {"summary": "added hello.py"}},
            ]
        },
        "gateProfile": "minimal",
    }
    body.update(extra)
    return body


def test_health_is_open_and_shaped_as_the_spec(system: Supervisor) -> None:
    body = httpx.get(f"{system.gateway_url}/health").json()
    assert body["status"] == "healthy"
    assert isinstance(body["uptime"], float)
    assert "T" in body["timestamp"]
    # MOSAIC_SANDBOX=none is asked for by name here, and shown as unsafe
    assert body["unsafe"] is True
    [spawner] = body["spawners"]
    assert spawner["ready"] is True
    assert (spawner["sandbox"], spawner["provider"]) == ("none", "scripted")
    assert spawner["environment"] == "host tools (no sandbox)"
    assert any("UNSAFE" in w and "MOSAIC_SANDBOX=none" in w for w in body["warnings"])


def test_task_completes_and_its_commit_lands_on_the_remote(
    http: httpx.Client, remote_repo: Path, unique: str
) -> None:
    answer = http.post("/agents/spawn", json=spawn_body(remote_repo, f"e2e-{unique}"))
    assert answer.status_code == 202, answer.text
    agent_id = answer.json()["agentId"]
    record = wait_final(http, agent_id)
    assert record["state"] == "completed", record
    assert record["taskState"] == "completed"
    assert record["startedAt"]
    assert record["completedAt"]
    assert record["pushedBranch"] == f"mosaic/agent-{agent_id}"
    # the commit is really on the bare remote, with the agent's file in it
    log = git(remote_repo, "log", "--format=%s", record["pushedBranch"])
    assert "Add a greeting" in log.splitlines()[0]
    assert git(remote_repo, "show", f"{record['pushedBranch']}:hello.py") == "print('hello')"
    # worktree removed
    assert record["worktree"] is None
    # what ran it, for every reader of the status
    assert record["provider"] == "scripted"
    assert record["model"] == "scripted"
    assert record["sandbox"] == "none"
    assert record["environment"] == "host tools (no sandbox)"
    assert record["unsafe"] is True
    events = http.get(f"/agents/{agent_id}/events").json()
    states = [e["state"] for e in events if e["kind"] in ("state", "task_state")]
    assert states[:3] == ["spawning", "assigned", "running"]
    assert states[-1] == "completed"
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)


def test_duplicate_task_id_answers_with_the_existing_agent(
    http: httpx.Client, remote_repo: Path, unique: str
) -> None:
    first = http.post("/agents/spawn", json=spawn_body(remote_repo, f"dup-{unique}"))
    second = http.post("/agents/spawn", json=spawn_body(remote_repo, f"dup-{unique}"))
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["agentId"] == first.json()["agentId"]
    assert second.json()["duplicate"] is True
    wait_final(http, first.json()["agentId"])


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(priority=0), "priority"),
        (lambda b: b.update(priority=11), "priority"),
        (lambda b: b.update(agentType="hacker"), "agentType"),
        (lambda b: b.pop("taskId"), "taskId"),
        (lambda b: b["context"].pop("workItems"), "context.workItems"),
        (
            lambda b: b["context"].update(repository="ext::sh -c touch% /tmp/pwned"),
            "context.repository",
        ),
        (lambda b: b["context"].update(branch="main..evil"), "context.branch"),
        (lambda b: b.update(surprise=1), "surprise"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field_and_stores_nothing(
    http: httpx.Client, remote_repo: Path, unique: str, mutate: Any, field: str
) -> None:
    before = http.get("/agents").json()["total"]
    body = spawn_body(remote_repo, f"bad-{unique}")
    mutate(body)
    answer = http.post("/agents/spawn", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field
    assert field.split(".")[-1] in error["message"] or error["message"]
    assert http.get("/agents").json()["total"] == before
    assert http.get("/agents", params={"taskId": f"bad-{unique}"}).json()["agents"] == []


def test_malformed_json_and_missing_repository(
    http: httpx.Client, unique: str, tmp_path: Path
) -> None:
    before = http.get("/agents").json()["total"]
    answer = http.post(
        "/agents/spawn", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    answer = http.post("/agents/spawn", json=spawn_body(tmp_path / "nope", f"missing-{unique}"))
    assert answer.status_code == 409 or answer.status_code == 422, answer.text
    assert "no repository" in answer.json()["error"]["message"]
    assert http.get("/agents").json()["total"] == before


def test_unreachable_repository_fails_clearly_and_leaves_nothing(
    http: httpx.Client, system: Supervisor, unique: str
) -> None:
    body = spawn_body(Path("/unused"), f"unreach-{unique}")
    body["context"]["repository"] = "https://127.0.0.1:9/nothing.git"
    body["options"]["maxRetries"] = 0
    answer = http.post("/agents/spawn", json=body)
    assert answer.status_code == 202
    record = wait_final(http, answer.json()["agentId"])
    assert record["state"] == "failed"
    assert record["error"]
    assert record["worktree"] is None
    leftovers = list((system.config.home / "repos").glob("*_worktrees/*"))
    assert not [p for p in leftovers if answer.json()["agentId"] in p.name]


def test_auth_is_required(system: Supervisor, remote_repo: Path) -> None:
    answer = httpx.post(
        f"{system.gateway_url}/agents/spawn", json=spawn_body(remote_repo, "noauth")
    )
    assert answer.status_code == 401
    answer = httpx.get(f"{system.gateway_url}/agents", headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401


def test_task_queued_while_spawner_is_down_runs_once_after_restart(
    http: httpx.Client, system: Supervisor, remote_repo: Path, unique: str
) -> None:
    system.stop_service("spawner", signal.SIGTERM)
    try:
        answer = http.post("/agents/spawn", json=spawn_body(remote_repo, f"restart-{unique}"))
        assert answer.status_code == 202
        agent_id = answer.json()["agentId"]
        time.sleep(1.0)
        assert http.get(f"/agents/{agent_id}/status").json()["taskState"] == "pending"
    finally:
        system.start_service("spawner")
        system.wait_healthy(30)
    record = wait_final(http, agent_id)
    assert record["state"] == "completed"
    assert record["attempts"] == 1
    events = http.get(f"/agents/{agent_id}/events").json()
    assert [e["state"] for e in events].count("running") == 1


FINISH = {"tool": "finish", "input": {"summary": "done"}}
WRITE = {"tool": "write_file", "input": {"path": "hello.py", "content": "print('hello')\n"}}


def _events(http: httpx.Client, agent_id: str) -> list[dict[str, Any]]:
    return list(http.get(f"/agents/{agent_id}/events").json())


def test_finish_with_an_unchanged_worktree_is_sent_back_once(
    http: httpx.Client, remote_repo: Path, unique: str
) -> None:
    """Nothing to commit: the agent is told; only a second finish ends it, pushing nothing.

    Before, the run pushed the base commit under the agent's branch and completed as if
    that were its work.
    """
    body = spawn_body(remote_repo, f"unchanged-{unique}")
    body["options"]["plan"] = [FINISH, FINISH]
    answer = http.post("/agents/spawn", json=body)
    assert answer.status_code == 202, answer.text
    agent_id = answer.json()["agentId"]
    record = wait_final(http, agent_id)
    assert record["state"] == "completed", record
    assert record["pushedBranch"] is None
    assert record["pushedCommit"] is None
    branches = git(remote_repo, "branch", "--list", f"mosaic/agent-{agent_id}")
    assert branches == ""  # nothing was pushed
    events = _events(http, agent_id)
    calls = [
        e
        for e in events
        if e["kind"] == "progress" and e["detail"] == {**e["detail"], "tool": "finish"}
    ]
    assert len(calls) == 2, events  # the first finish was sent back
    final = [e for e in events if e["kind"] == "state" and e["state"] == "completed"]
    assert "nothing was pushed" in final[-1]["detail"]["unchanged"], final


def test_agent_told_of_an_unchanged_worktree_can_still_make_its_change(
    http: httpx.Client, remote_repo: Path, unique: str
) -> None:
    body = spawn_body(remote_repo, f"late-change-{unique}")
    body["options"]["plan"] = [FINISH, WRITE, FINISH]
    answer = http.post("/agents/spawn", json=body)
    agent_id = answer.json()["agentId"]
    record = wait_final(http, agent_id)
    assert record["state"] == "completed", record
    assert record["pushedBranch"] == f"mosaic/agent-{agent_id}"
    assert git(remote_repo, "show", f"{record['pushedBranch']}:hello.py") == "print('hello')"


def test_a_reviewer_that_changes_nothing_completes_at_once_without_a_push(
    http: httpx.Client, remote_repo: Path, unique: str
) -> None:
    body = spawn_body(remote_repo, f"review-{unique}", agentType="reviewer")
    body["options"]["plan"] = [{"tool": "finish", "input": {"summary": "confidence: 0.9 ok"}}]
    agent_id = http.post("/agents/spawn", json=body).json()["agentId"]
    record = wait_final(http, agent_id)
    assert record["state"] == "completed", record
    assert record["pushedBranch"] is None
    assert git(remote_repo, "branch", "--list", f"mosaic/agent-{agent_id}") == ""
    finishes = [
        e
        for e in _events(http, agent_id)
        if e["kind"] == "progress" and e["detail"] == {**e["detail"], "tool": "finish"}
    ]
    assert len(finishes) == 1  # not sent back: a reviewer cannot change files


def test_quality_check_endpoint_runs_the_gates_on_a_live_agents_worktree(
    http: httpx.Client, remote_repo: Path, unique: str, tmp_path: Path
) -> None:
    body = spawn_body(remote_repo, f"qc-{unique}")
    body["options"]["plan"] = [
        {"tool": "write_file", "input": {"path": "x.py", "content": "x = 1\n"}},
        {"tool": "run_command", "input": {"command": "sleep 30"}},
        {"tool": "finish", "input": {"summary": "done"}},
    ]
    agent_id = http.post("/agents/spawn", json=body).json()["agentId"]
    deadline = time.monotonic() + 30
    while http.get(f"/agents/{agent_id}/status").json()["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        answer = http.post(
            "/api/quality/check", json={"agentId": agent_id, "profile": "standard"}, timeout=120
        )
        assert answer.status_code == 200, answer.text
        decision = answer.json()
        assert {r["name"] for r in decision["results"]} >= {"tests", "lint"}
        assert decision["approved"] is True  # nothing failed (gates without commands skip)

        both = http.post("/api/quality/check", json={"agentId": agent_id, "worktree": "/tmp"})
        assert both.status_code == 422
        unknown = http.post("/api/quality/check", json={"agentId": "nobody"})
        assert unknown.status_code == 404
        outside = http.post("/api/quality/check", json={"worktree": str(tmp_path)})
        assert outside.status_code == 422
        assert "bad_worktree" in outside.json()["error"]["message"]
    finally:
        http.post(f"/agents/{agent_id}/kill")


def test_a_token_in_the_finish_summary_is_stored_and_committed_redacted(
    http: httpx.Client, remote_repo: Path, unique: str
) -> None:
    """The summary is shown in events and written into the commit message: both masked."""
    github = "ghp_" + "Zq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1Aq4Zx7Cv0Bn3"
    aws = "Zq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1" + "Aq4Zx7Cv0Bn3Mm6N"
    summary = (
        f"added hello.py; checked with curl -H 'Authorization: Bearer {github}' "
        f"and AWS_SECRET_ACCESS_KEY={aws} aws s3 ls"
    )
    body = spawn_body(remote_repo, f"redact-{unique}")
    body["options"]["plan"] = [WRITE, {"tool": "finish", "input": {"summary": summary}}]
    answer = http.post("/agents/spawn", json=body)
    assert answer.status_code == 202, answer.text
    agent_id = answer.json()["agentId"]
    record = wait_final(http, agent_id)
    assert record["state"] == "completed", record
    events = http.get(f"/agents/{agent_id}/events")
    status = http.get(f"/agents/{agent_id}/status")
    message = git(remote_repo, "log", "-1", "--format=%B", record["pushedBranch"])
    for shown in (events.text, status.text, message):
        assert github not in shown
        assert aws not in shown
    final = [e for e in events.json() if e["kind"] == "state" and e["state"] == "completed"]
    assert final[-1]["detail"]["summary"].startswith("added hello.py; checked with curl")
    assert "***" in final[-1]["detail"]["summary"]
    assert "***" in message
