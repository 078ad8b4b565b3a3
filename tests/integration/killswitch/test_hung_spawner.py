"""A kill works when the owning spawner is hung (SIGSTOP): the killswitch ends the agent."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.integration.killswitch.helpers import (
    admin,
    agent_processes,
    events,
    final_states,
    sleeper,
    spawn,
    status,
    system,
    wait_state,
    worktrees,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_hung_spawner_agent_is_killed_by_the_killswitch(tmp_path: Path, remote_repo: Path) -> None:
    with system(tmp_path / "home", KILL_GRACE_S="1.0") as sup, admin(sup) as http:
        agent_id = spawn(http, remote_repo, "hung-1", sleeper(120))
        wait_state(http, [agent_id], {"running"}, timeout=60)
        deadline = time.monotonic() + 10
        while not agent_processes(agent_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agent_processes(agent_id), "the agent's sleep should be running"

        sup.stop_service("spawner", signal.SIGSTOP)
        try:
            started = time.perf_counter()
            answer = http.post(f"/agents/{agent_id}/kill")
            elapsed = time.perf_counter() - started
            print(f"\nkill with a hung spawner answered in {elapsed * 1000:.0f} ms")
            assert answer.status_code == 200, answer.text
            assert answer.json()["state"] == "killed"
            assert elapsed < 5.0
            gone_by = time.monotonic() + 2  # SIGKILLed: gone once the kernel schedules them
            while agent_processes(agent_id) and time.monotonic() < gone_by:
                time.sleep(0.02)
            assert agent_processes(agent_id) == []
            record = status(http, agent_id)
            assert record["state"] == "killed"
            assert record["taskState"] == "failed"
            killed = [e for e in events(http, agent_id) if e.get("state") == "killed"]
            assert killed[0]["detail"]["by"] == "killswitch"
            deadline = time.monotonic() + 20
            while worktrees(sup, agent_id) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert worktrees(sup, agent_id) == []
        finally:
            sup.stop_service("spawner", signal.SIGCONT)
        time.sleep(2.0)  # the spawner wakes up to the same order: still one end
        history = events(http, agent_id)
        assert final_states(history) == ["killed"]
        assert status(http, agent_id)["state"] == "killed"
        cleanup = [e for e in history if e["kind"] == "cleanup"]
        assert any(e["detail"].get("by") == "killswitch" for e in cleanup)
        audit = http.get("/audit", params={"agentId": agent_id}).json()
        assert audit[0]["kind"] == "kill"
        assert audit[0]["detail"]["byKillswitch"] == 1
