"""Running a whole system for queue tests, and reading what happened to its agents."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.systems import FINAL


def system(home: Path, services: tuple[str, ...] | None = None, **env: str) -> Supervisor:
    config = SystemConfig(
        home=home,
        gateway_port=free_port(),
        env={"MOSAIC_PROVIDER": "scripted", "MOSAIC_SANDBOX": "none", **env},
    )
    if services is not None:
        config.services = services
    return Supervisor(config)


def client(supervisor: Supervisor) -> httpx.Client:
    token = supervisor.tokens["MOSAIC_API_TOKEN"]
    return httpx.Client(
        base_url=supervisor.gateway_url, timeout=15, headers={"Authorization": f"Bearer {token}"}
    )


def body(repo: Path, task_id: str, plan: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": [f"work on {task_id}"]},
        "options": {"plan": plan, **options},
        "gateProfile": "minimal",
    }


def write_plan(name: str, sleep: float = 0) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    if sleep:
        steps.append(
            {"tool": "run_command", "input": {"command": f"sleep {sleep}", "timeout": 120}}
        )
    steps += [
        {"tool": "write_file", "input": {"path": f"{name}.txt", "content": f"{name}\n"}},
        {"tool": "finish", "input": {"summary": f"wrote {name}.txt"}},
    ]
    return steps


def wait_all_final(http: httpx.Client, agent_ids: list[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    records: dict[str, Any] = {}
    while time.monotonic() < deadline:
        for agent_id in agent_ids:
            if records.get(agent_id, {}).get("state") in FINAL:
                continue
            records[agent_id] = http.get(f"/agents/{agent_id}/status").json()
        if all(r.get("state") in FINAL for r in records.values()) and len(records) == len(
            agent_ids
        ):
            return records
        time.sleep(0.2)
    stuck = {a: (r["state"], r["taskState"]) for a, r in records.items() if r["state"] not in FINAL}
    raise AssertionError(f"not final after {timeout}s: {stuck}")


def events(http: httpx.Client, agent_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = http.get(f"/agents/{agent_id}/events").json()
    return result
