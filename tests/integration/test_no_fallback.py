"""No silent fallback: a spawner without a sandbox or a model takes no task, and spawn
answers 503 naming what to install or set, leaving nothing behind.

Real processes (spawner and gateway as ``mosaic up`` starts them) over real NATS and
Valkey; the environment makes the missing piece really missing (no key, a Docker socket
that does not exist, a bwrap binary that does not exist).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from shared.sandbox.bwrap import find_bwrap
from shared.sandbox.settings import SandboxSettings
from tests.integration.sandbox.conftest import require_bwrap

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NO_KEY = {"ANTHROPIC_API_KEY": "", "CLAUDE_API_KEY": "", "MOSAIC_PROVIDER": ""}
"""An empty setting is no setting: the spawner sees neither a key nor a provider."""


@contextmanager
def spawner_and_gateway(home: Path, env: dict[str, str]) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=home,
        gateway_port=free_port(),
        env=env,
        services=("spawner", "gateway", "gitops"),  # gitops checks the repository path
    )
    with Supervisor(config) as supervisor:
        yield supervisor


def client(supervisor: Supervisor) -> httpx.Client:
    token = supervisor.tokens["MOSAIC_API_TOKEN"]
    return httpx.Client(
        base_url=supervisor.gateway_url, timeout=15, headers={"Authorization": f"Bearer {token}"}
    )


def body(repo: Path, task_id: str) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": ["anything"]},
        "gateProfile": "minimal",
    }


def refused(http: httpx.Client, repo: Path, task_id: str) -> str:
    """Spawn, expect the 503, check nothing was stored or queued; the error's message."""
    answer = http.post("/agents/spawn", json=body(repo, task_id))
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "no_spawner_ready"
    assert http.get("/agents", params={"taskId": task_id}).json()["agents"] == []
    assert http.get("/agents").json()["total"] == 0
    queue = http.get("/queue").json()
    assert (queue["waiting"], queue["pending"]) == (0, 0)
    message: str = error["message"]
    return message


def test_no_key_and_no_provider_answers_503_naming_the_settings(
    tmp_path: Path, remote_repo: Path
) -> None:
    env = {**NO_KEY, "MOSAIC_SANDBOX": "none"}
    with spawner_and_gateway(tmp_path / "home", env) as sup, client(sup) as http:
        message = refused(http, remote_repo, "no-key")
        assert "ANTHROPIC_API_KEY" in message
        assert "MOSAIC_PROVIDER" in message
        health = http.get("/health").json()
        [spawner] = health["spawners"]
        assert spawner["ready"] is False
        assert spawner["provider"] is None
        assert any("ANTHROPIC_API_KEY" in p for p in spawner["problems"])
        assert any("ANTHROPIC_API_KEY" in w for w in health["warnings"])
        assert health["unsafe"] is False  # it runs nothing, so nothing runs unsafely
        # a clean stop withdraws the record: with no spawner at all the task is queued
        # and waits for one (the queue's promise), as before
        sup.stop_service("spawner")
        answer = http.post("/agents/spawn", json=body(remote_repo, "waits"))
        assert answer.status_code == 202, answer.text
        assert http.get("/queue").json()["waiting"] == 1


def test_docker_asked_for_but_unreachable_answers_503_naming_docker(
    tmp_path: Path, remote_repo: Path
) -> None:
    env = {
        "MOSAIC_PROVIDER": "scripted",
        "MOSAIC_SANDBOX": "docker",
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
    }
    with spawner_and_gateway(tmp_path / "home", env) as sup, client(sup) as http:
        message = refused(http, remote_repo, "no-docker")
        assert "no sandbox" in message
        assert "MOSAIC_SANDBOX=docker" in message
        [spawner] = http.get("/health").json()["spawners"]
        assert (spawner["ready"], spawner["sandbox"], spawner["provider"]) == (
            False,
            None,
            "scripted",
        )


def test_auto_without_docker_and_without_bwrap_answers_503_naming_both(
    tmp_path: Path, remote_repo: Path
) -> None:
    env = {
        "MOSAIC_PROVIDER": "scripted",
        "MOSAIC_SANDBOX": "auto",
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "MOSAIC_SANDBOX_BWRAP": "/nonexistent/bwrap",
    }
    with spawner_and_gateway(tmp_path / "home", env) as sup, client(sup) as http:
        message = refused(http, remote_repo, "no-sandbox").lower()
        assert "docker" in message
        assert "bubblewrap" in message or "bwrap" in message


def test_a_spawner_whose_sandbox_appears_later_starts_taking_tasks(
    tmp_path: Path, remote_repo: Path
) -> None:
    """Docker (here: bwrap) may come up after the spawner: it looks again and serves."""
    asyncio.run(require_bwrap())
    later = tmp_path / "later" / "bwrap"
    env = {
        "MOSAIC_PROVIDER": "scripted",
        "MOSAIC_SANDBOX": "bwrap",
        "MOSAIC_SANDBOX_BWRAP": str(later),
        "SPAWNER_RECHECK_S": "0.5",
    }
    with spawner_and_gateway(tmp_path / "home", env) as sup, client(sup) as http:
        message = refused(http, remote_repo, "too-early")
        assert "MOSAIC_SANDBOX=bwrap" in message
        later.parent.mkdir()
        later.symlink_to(find_bwrap(SandboxSettings()))
        deadline = time.monotonic() + 30
        while not any(s["ready"] for s in http.get("/health").json()["spawners"]):
            assert time.monotonic() < deadline, http.get("/health").json()
            time.sleep(0.2)
        [spawner] = http.get("/health").json()["spawners"]
        assert (spawner["sandbox"], spawner["environment"]) == ("bwrap", "host tools (bwrap)")
        answer = http.post("/agents/spawn", json=body(remote_repo, "in-time"))
        assert answer.status_code == 202, answer.text
