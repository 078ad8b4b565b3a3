"""Time-outs end the attempt: retries follow ``maxRetries``, never the delivery limit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mosaic.embedded import ServerProcess
from services.spawner.admission import Admission
from services.spawner.clients import Gates
from services.spawner.errors import StepFailedError
from shared.bus import make_broker
from shared.messages.gates import GateCheckRequested
from shared.settings import NatsSettings
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


async def test_a_gates_check_with_no_gates_service_fails_at_once_not_after_its_timeout(
    own_nats: ServerProcess,
) -> None:
    # The retry durability test relies on this: its gates-less phase needs no short
    # GATES_TIMEOUT_S, which would also cut off the gates run once gates is back.
    broker = make_broker(NatsSettings(nats_url=f"nats://127.0.0.1:{own_nats.port}"), "probe")
    await broker.start()
    admission = Admission(10, initial=4)
    try:
        gates = Gates(broker, timeout=60, attempts=1, host="nowhere", admission=admission)
        started = time.monotonic()
        with pytest.raises(StepFailedError, match="gates unavailable"):
            await gates.check(
                GateCheckRequested(
                    agent_id="a1",
                    task_id="t1",
                    worktree="/nonexistent",
                    phase="pre-commit",
                    profile="minimal",
                )
            )
        assert time.monotonic() - started < 10  # "no responders", not the 60 s timeout
        assert (admission.in_flight, admission.limit) == (0, 4)  # counted, then released
    finally:
        await broker.stop()
