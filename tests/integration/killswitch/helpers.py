"""Running the whole system for killswitch tests, and reading what became of agents."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.systems import FINAL


def system(home: Path, **env: str) -> Supervisor:
    """The system as ``mosaic up`` runs it (NATS authorization on), scripted agents."""
    config = SystemConfig(
        home=home,
        gateway_port=free_port(),
        env={"MOSAIC_PROVIDER": "scripted", "MOSAIC_SANDBOX": "none", **env},
    )
    return Supervisor(config)


@contextmanager
def admin(supervisor: Supervisor) -> Iterator[httpx.Client]:
    token = supervisor.tokens["MOSAIC_ADMIN_TOKEN"]
    with httpx.Client(
        base_url=supervisor.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        yield http


def spawn_body(
    repo: Path, task_id: str, plan: list[dict[str, Any]], **options: Any
) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": [f"work on {task_id}"]},
        "options": {"plan": plan, **options},
        "gateProfile": "minimal",
    }


def sleeper(seconds: int = 60) -> list[dict[str, Any]]:
    """A plan that runs one long command (then would finish)."""
    return [
        {"tool": "run_command", "input": {"command": f"sleep {seconds}", "timeout": 600}},
        {"tool": "finish", "input": {"summary": "slept"}},
    ]


def noop() -> list[dict[str, Any]]:
    return [{"tool": "finish", "input": {"summary": "nothing to do"}}]


def spawn(http: httpx.Client, repo: Path, task_id: str, plan: list[dict[str, Any]]) -> str:
    answer = http.post("/agents/spawn", json=spawn_body(repo, task_id, plan))
    assert answer.status_code == 202, answer.text
    agent_id: str = answer.json()["agentId"]
    return agent_id


def status(http: httpx.Client, agent_id: str) -> dict[str, Any]:
    """The agent's record. A GET is retried once when the server closed the kept-alive
    connection just as the request went out (what any HTTP client does for an idempotent
    request; seen when a loaded machine starves the polling loop)."""
    try:
        answer = http.get(f"/agents/{agent_id}/status")
    except httpx.RemoteProtocolError:
        answer = http.get(f"/agents/{agent_id}/status")
    record: dict[str, Any] = answer.json()
    return record


def events(http: httpx.Client, agent_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = http.get(f"/agents/{agent_id}/events").json()
    return result


def wait_state(
    http: httpx.Client, agent_ids: list[str], states: AbstractSet[str], timeout: float
) -> dict[str, dict[str, Any]]:
    """Poll until every agent is in one of ``states``."""
    deadline = time.monotonic() + timeout
    records: dict[str, dict[str, Any]] = {}
    while True:
        for agent_id in agent_ids:
            if records.get(agent_id, {}).get("state") not in states:
                records[agent_id] = status(http, agent_id)
        if all(r["state"] in states for r in records.values()):
            return records
        if time.monotonic() > deadline:
            stuck = {a: r["state"] for a, r in records.items() if r["state"] not in states}
            raise AssertionError(f"not {states} after {timeout}s: {stuck}")
        time.sleep(0.05)


def final_states(history: list[dict[str, Any]]) -> list[str]:
    return [e["state"] for e in history if e["kind"] == "state" and e["state"] in FINAL]


def agent_processes(agent_id: str) -> list[int]:
    """Pids of live processes whose environment names ``agent_id`` (local sandboxes)."""
    needle = f"MOSAIC_AGENT_ID={agent_id}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    with open(f"/proc/{entry.name}/stat") as stat:
                        if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                            found.append(int(entry.name))
        except OSError:
            continue
    return found


def worktrees(supervisor: Supervisor, agent_id: str) -> list[Path]:
    return list((supervisor.config.home / "repos").glob(f"*_worktrees/agent-{agent_id}-*"))
