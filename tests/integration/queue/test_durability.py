"""No task lost or run twice by accident, whatever crashes: real processes, real servers."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.queue.helpers import (
    body,
    client,
    events,
    system,
    wait_all_final,
    write_plan,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_spawner_sigkilled_mid_task_repeatedly_loses_and_doubles_nothing(
    tmp_path: Path, remote_repo: Path
) -> None:
    env = {"TASK_ACK_WAIT_S": "2", "SPAWNER_CONCURRENCY": "4"}
    with system(tmp_path / "home", None, **env) as sup, client(sup) as http:
        ids = []
        for n in range(12):
            answer = http.post(
                "/agents/spawn", json=body(remote_repo, f"crash-{n}", write_plan(f"c{n}", 1.5))
            )
            assert answer.status_code == 202
            ids.append(answer.json()["agentId"])
        for _ in range(3):  # kill the spawner while agents run, several times
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                running = http.get("/agents", params={"state": "running"}).json()["agents"]
                if running:
                    break
                time.sleep(0.05)
            sup.stop_service("spawner", signal.SIGKILL)
            sup.start_service("spawner")
        records = wait_all_final(http, ids, timeout=150)

        assert {r["state"] for r in records.values()} == {"completed"}
        for agent_id, record in records.items():
            history = events(http, agent_id)
            completed = [e for e in history if e["kind"] == "state" and e["state"] == "completed"]
            assert len(completed) == 1, history
            branch = record["pushedBranch"]
            assert git(remote_repo, "rev-parse", "--verify", branch)
        assert sum(r["attempts"] > 1 for r in records.values()) >= 1  # crashes really hit agents
        worktrees = list((sup.config.home / "repos").glob("*_worktrees/agent-*"))
        assert worktrees == []


def test_agent_running_three_times_the_ack_wait_is_not_redelivered(
    tmp_path: Path, remote_repo: Path
) -> None:
    with system(tmp_path / "home", TASK_ACK_WAIT_S="1") as sup, client(sup) as http:
        answer = http.post("/agents/spawn", json=body(remote_repo, "long-1", write_plan("long", 4)))
        agent_id = answer.json()["agentId"]
        record = wait_all_final(http, [agent_id], timeout=60)[agent_id]
        assert record["state"] == "completed"
        assert record["attempts"] == 1
        assert [e["state"] for e in events(http, agent_id)].count("running") == 1


def test_retries_back_off_then_succeed_or_fail_with_every_attempt_recorded(
    tmp_path: Path, remote_repo: Path
) -> None:
    # no gates service: every finish is "gates unavailable", an infrastructure failure.
    # That needs no short GATES_TIMEOUT_S: with nobody subscribed NATS answers "no
    # responders" at once. The timeout bounds the gates run once gates is back, so it
    # must outlast one (the seed's unittest took 0.6-1.5 s on a loaded 2-core machine;
    # at 0.5 s the healed task's last attempts gave up on a gates that was answering).
    services = ("gitops", "killswitch", "spawner", "gateway")
    env = {"RETRY_BASE_DELAY_S": "1.5", "GATES_ATTEMPTS": "1", "GATES_TIMEOUT_S": "30"}
    with system(tmp_path / "home", services=services, **env) as sup, client(sup) as http:
        doomed = http.post(
            "/agents/spawn", json=body(remote_repo, "doomed", write_plan("d"), maxRetries=2)
        )
        healed = http.post(
            "/agents/spawn", json=body(remote_repo, "healed", write_plan("h"), maxRetries=4)
        )
        doomed_id, healed_id = doomed.json()["agentId"], healed.json()["agentId"]

        record = wait_all_final(http, [doomed_id], timeout=60)[doomed_id]
        assert record["state"] == "failed"
        assert record["attempts"] == 3
        assert "gates unavailable" in record["error"]
        history = events(http, doomed_id)
        retries = [e for e in history if "retry" in e["detail"]]
        assert len(retries) == 2
        assigned = [e["at"] for e in history if e["state"] == "assigned"]
        assert len(assigned) == 3
        gaps = [_seconds(b) - _seconds(a) for a, b in itertools.pairwise(assigned)]
        assert gaps[1] > gaps[0], gaps  # the delays grow

        # the other task failed twice meanwhile; bring gates back and it succeeds
        deadline = time.monotonic() + 60
        while sum("retry" in e["detail"] for e in events(http, healed_id)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        sup.start_service("gates")
        record = wait_all_final(http, [healed_id], timeout=60)[healed_id]
        assert record["state"] == "completed", record
        assert record["attempts"] >= 3


def test_broker_restart_with_tasks_queued_loses_none(tmp_path: Path, remote_repo: Path) -> None:
    with system(tmp_path / "home") as sup, client(sup) as http:
        sup.stop_service("spawner")
        ids = [
            http.post(
                "/agents/spawn", json=body(remote_repo, f"restart-{n}", write_plan(f"r{n}"))
            ).json()["agentId"]
            for n in range(10)
        ]
        sup.servers["nats"].restart()
        sup.start_service("spawner")
        records = wait_all_final(http, ids, timeout=90)
        assert {r["state"] for r in records.values()} == {"completed"}


def test_spawn_answers_503_while_nats_is_down_and_stores_nothing(
    tmp_path: Path, remote_repo: Path
) -> None:
    with system(tmp_path / "home") as sup, client(sup) as http:
        before = http.get("/agents").json()["total"]
        sup.servers["nats"].stop()
        try:
            time.sleep(0.5)
            answer = http.post(
                "/agents/spawn", json=body(remote_repo, "while-down", write_plan("w"))
            )
            assert answer.status_code == 503, answer.text
            assert "not accepted" in answer.json()["error"]["message"]
            assert http.get("/agents").json()["total"] == before
        finally:
            sup.servers["nats"].restart()
        deadline = time.monotonic() + 30
        while True:  # the gateway reconnects on its own
            answer = http.post(
                "/agents/spawn", json=body(remote_repo, "while-down", write_plan("w"))
            )
            if answer.status_code == 202 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert answer.status_code == 202
        agent_id = answer.json()["agentId"]
        assert wait_all_final(http, [agent_id], timeout=60)[agent_id]["state"] == "completed"


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_valkey_restart_mid_run_loses_no_state(tmp_path: Path, remote_repo: Path) -> None:
    with system(tmp_path / "home") as sup, client(sup) as http:
        first = [
            http.post(
                "/agents/spawn", json=body(remote_repo, f"vk-a{n}", write_plan(f"a{n}", 1))
            ).json()["agentId"]
            for n in range(3)
        ]
        sup.servers["valkey"].restart()  # AOF on: every record survives
        second: list[str] = []
        deadline = time.monotonic() + 30
        while len(second) < 3 and time.monotonic() < deadline:
            answer = http.post(
                "/agents/spawn", json=body(remote_repo, f"vk-b{len(second)}", write_plan("b"))
            )
            if answer.status_code == 202:
                second.append(answer.json()["agentId"])
            else:
                time.sleep(0.2)
        records = wait_all_final(http, first + second, timeout=90)
        # every record survived the restart and every agent ended; an attempt caught in
        # the restart may end failed with the reason recorded (seen once under load)
        assert len(records) == 6
        assert all(r["taskId"] for r in records.values())
        failed = [r["error"] for r in records.values() if r["state"] != "completed"]
        assert len(failed) <= 1, failed
        assert all(failed), failed


def test_sigterm_hands_a_running_agent_back_and_it_runs_again(
    tmp_path: Path, remote_repo: Path
) -> None:
    with system(tmp_path / "home") as sup, client(sup) as http:
        agent_id = http.post(
            "/agents/spawn", json=body(remote_repo, "handback", write_plan("hb", 15))
        ).json()["agentId"]
        deadline = time.monotonic() + 30
        while http.get(f"/agents/{agent_id}/status").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        sup.stop_service("spawner", signal.SIGTERM)
        stopped = time.monotonic() - started
        print(f"spawner stopped {stopped:.2f}s after SIGTERM")
        assert stopped < 10  # it does not wait for the agent to finish
        record = http.get(f"/agents/{agent_id}/status").json()
        assert (record["state"], record["taskState"]) == ("spawning", "pending")
        sup.start_service("spawner")
        record = wait_all_final(http, [agent_id], timeout=60)[agent_id]
        assert record["state"] == "completed"
        assert record["attempts"] == 2
        retries = [e["detail"]["retry"] for e in events(http, agent_id) if "retry" in e["detail"]]
        assert retries == ["handed back: its spawner stopped"]
