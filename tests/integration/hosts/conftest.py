"""What the multi-host tests share: one remote every agent pushes to, and spawning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.chaos.evidence import enable_push_log
from tests.conftest import make_remote


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bare repository every agent of the module pushes to, logging every ref update
    (``loadtests.chaos.evidence.pushes_per_branch`` counts the pushes)."""
    bare = make_remote(tmp_path_factory.mktemp("remote"))
    enable_push_log(bare)
    return bare


def spawn(http: httpx.Client, remote: Path, task_id: str, plan: list[dict[str, Any]]) -> str:
    """Spawn a scripted agent on ``remote`` with the minimal gate profile; its id."""
    body = {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(remote), "branch": "main", "workItems": [task_id]},
        "options": {"plan": plan},
        "gateProfile": "minimal",
    }
    answer = http.post("/agents/spawn", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"])
