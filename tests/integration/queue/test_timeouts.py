"""Time-outs end the attempt: retries follow ``maxRetries``, never the delivery limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.queue.helpers import body, client, events, system, wait_all_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SLOW_TEST = (
    "import time\nimport unittest\n\n\n"
    "class SlowTest(unittest.TestCase):\n"
    "    def test_slow(self):\n        time.sleep(60)\n"
)


def slow_gate_plan() -> list[dict[str, Any]]:
    """Adds a test that sleeps a minute, so the tests gate outlives the agent's time-out."""
    return [
        {"tool": "write_file", "input": {"path": "test_slow.py", "content": SLOW_TEST}},
        {"tool": "finish", "input": {"summary": "added a slow test"}},
    ]


def test_agent_timeout_during_a_slow_gate_ends_failed_not_rerun(
    tmp_path: Path, remote_repo: Path
) -> None:
    with system(tmp_path / "home") as sup, client(sup) as http:
        answer = http.post(
            "/agents/spawn",
            json=body(remote_repo, "slow-gate", slow_gate_plan(), timeout=4, maxRetries=1),
        )
        agent_id = answer.json()["agentId"]
        record = wait_all_final(http, [agent_id], timeout=90)[agent_id]
        assert record["state"] == "failed", record
        assert record["attempts"] <= 2, record
        assert "timeout after 4s" in record["error"], record
        history = events(http, agent_id)
        assert [e["state"] for e in history].count("running") <= 2, history
        assert not any("handed back" in str(e["detail"]) for e in history), history
