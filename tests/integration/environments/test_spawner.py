"""Through the whole system (spawn over HTTP, the spawner, gitops) on a sandbox that
cannot run images: a repository that declares an environment fails at once, saying why,
and is not retried; one with a broken declaration fails naming the file and field."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.conftest import STDLIB_GATES, TEST_APP
from tests.integration.environments.repos import Repo
from tests.systems import operator_http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("home"),
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "scripted",
            "MOSAIC_SANDBOX": "none",
            "TASK_ACK_WAIT_S": "5",
        },
    )
    with Supervisor(config) as system, operator_http(system, 10) as client:
        yield client


def run_task(http: httpx.Client, repo: Path, task_id: str) -> tuple[dict[str, Any], list[Any]]:
    body = {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": ["Fix it"]},
        "options": {
            "maxRetries": 2,
            "plan": [
                {"tool": "write_file", "input": {"path": "x.py", "content": "x = 1\n"}},
                {"tool": "finish", "input": {"summary": "done"}},
            ],
        },
        "gateProfile": "minimal",
    }
    answer = http.post("/agents/spawn", json=body)
    assert answer.status_code == 202, answer.text
    agent_id = answer.json()["agentId"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record: dict[str, Any] = http.get(f"/agents/{agent_id}/status").json()
        if record["state"] in ("completed", "failed", "killed"):
            return record, http.get(f"/agents/{agent_id}/events").json()
        time.sleep(0.1)
    raise AssertionError(f"{agent_id} not final: {record}")


def test_a_declared_environment_without_docker_fails_clearly_once(
    http: httpx.Client, tmp_path: Path, unique: str
) -> None:
    repo = Repo(tmp_path)
    repo.commit({".mosaic/environment.toml": 'setup = ["apt-get install -y make"]\n'})
    record, events = run_task(http, repo.bare, f"envnone-{unique}")
    assert record["state"] == "failed"
    assert ".mosaic/environment.toml" in record["error"]
    assert "needs the docker sandbox" in record["error"]
    assert "MOSAIC_SANDBOX=none" in record["error"]
    assert record["attempts"] == 1  # not retried although maxRetries is 2
    assert "running" not in [e["state"] for e in events]  # no sandbox was started
    assert record["worktree"] is None


def test_a_broken_declaration_fails_naming_the_file_and_field(
    http: httpx.Client, tmp_path: Path, unique: str
) -> None:
    repo = Repo(tmp_path)
    repo.commit(
        {
            ".devcontainer/devcontainer.json": (
                '{"image": "x", "features": {"ghcr.io/devcontainers/features/node:1": {}}}'
            )
        }
    )
    record, _ = run_task(http, repo.bare, f"envbad-{unique}")
    assert record["state"] == "failed"
    assert ".devcontainer/devcontainer.json: features" in record["error"]
    assert "ghcr.io/devcontainers/features/node:1" in record["error"]
    assert record["attempts"] == 1


def test_without_a_declaration_the_task_runs_as_before(
    http: httpx.Client, tmp_path: Path, unique: str
) -> None:
    repo = Repo(tmp_path)
    repo.commit(
        {
            "app.py": "def add(a, b):\n    return a + b\n",
            "test_app.py": TEST_APP,
            ".mosaic/gates.toml": STDLIB_GATES,
        }
    )
    record, _ = run_task(http, repo.bare, f"envplain-{unique}")
    assert record["state"] == "completed", (record["error"], record)
