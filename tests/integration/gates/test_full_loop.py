"""The whole loop over real processes: a worker's failing test is rejected by the
gates, it fixes the test on its next turn, the gates pass and its branch is pushed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.integration.gates.samples import build_sample, gates_toml, git
from tests.systems import operator_http, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BAD_TEST = "from calc.ops import add\n\n\ndef test_four() -> None:\n    assert add(2, 2) == 5\n"
GOOD_TEST = BAD_TEST.replace("== 5", "== 4")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("gates-home"),
        gateway_port=free_port(),
        env={"MOSAIC_PROVIDER": "scripted", "MOSAIC_SANDBOX": "none", "YOLO_MODE": "false"},
    )
    with Supervisor(config) as supervisor:
        yield supervisor


def run_plan(
    system: Supervisor, remote: Path, task_id: str, plan: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    body = {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(remote), "branch": "main", "workItems": ["Test add"]},
        "options": {"plan": plan, "maxRetries": 0},
        "gateProfile": "minimal",
    }
    with operator_http(system, 10) as http:
        answer = http.post("/agents/spawn", json=body)
        assert answer.status_code == 202, answer.text
        agent_id = answer.json()["agentId"]
        record = wait_final(http, agent_id)
        events: list[dict[str, Any]] = http.get(f"/agents/{agent_id}/events").json()
    return record, events


def test_rejected_then_fixed_then_pushed(system: Supervisor, tmp_path: Path, unique: str) -> None:
    _, remote = build_sample(tmp_path, gates=gates_toml(only_tests=True), name="loop")
    assert remote is not None
    plan = [
        {"tool": "write_file", "input": {"path": "tests/test_four.py", "content": BAD_TEST}},
        {"tool": "finish", "input": {"summary": "added a test"}},
        {"tool": "write_file", "input": {"path": "tests/test_four.py", "content": GOOD_TEST}},
        {"tool": "finish", "input": {"summary": "fixed the test"}},
    ]
    record, events = run_plan(system, remote, f"gates-loop-{unique}", plan)
    agent_id = record["agentId"]
    assert record["state"] == "completed", record
    # the agent's status shows the last gate results, informative ones
    (tests,) = record["gates"]
    assert tests["name"] == "tests"
    assert tests["status"] == "passed"
    assert tests["durationMs"] > 0
    assert "1 passed" in tests["excerpt"] or "3 passed" in tests["excerpt"]
    # two gate checks: the first rejected with the failing assertion, the second approved
    gates = [e["detail"] for e in events if e["kind"] == "gate"]
    assert [g["approved"] for g in gates] == [False, True]
    first = gates[0]["results"][0]
    assert first["status"] == "failed"
    assert "assert 4 == 5" in first["excerpt"] or "test_four" in first["excerpt"]
    # the fixed test is what was pushed
    branch = record["pushedBranch"]
    assert branch == f"mosaic/agent-{agent_id}"
    assert git(remote, "show", f"{branch}:tests/test_four.py") == GOOD_TEST.strip()


def test_a_finish_with_nothing_changed_runs_no_gates(
    system: Supervisor, tmp_path: Path, unique: str
) -> None:
    """Told nothing changed, the agent finishes again: no gate ran either time (they
    would have tested the base, twice), nothing was pushed, and its status says so."""
    _, remote = build_sample(tmp_path, gates=gates_toml(only_tests=True), name="noop")
    assert remote is not None
    finish = {"tool": "finish", "input": {"summary": "nothing to do"}}
    record, events = run_plan(system, remote, f"noop-{unique}", [finish, finish])
    assert record["state"] == "completed", record
    assert record["pushedBranch"] is None
    assert [e for e in events if e["kind"] == "gate"] == []
    said = [e["detail"] for e in events if e["detail"].get("step") == "finish"]
    assert said == [{"step": "finish", "gates": "not run: nothing changed"}] * 2


def test_a_change_hidden_from_the_agents_git_is_gated_before_its_push(
    system: Supervisor, tmp_path: Path, unique: str
) -> None:
    """The agent hides a failing test from its own git (``.git/info/exclude``), so its
    repository looks untouched: the commit step sees the file all the same, the gates run
    on it and reject it, and only the fixed test is pushed."""
    _, remote = build_sample(tmp_path, gates=gates_toml(only_tests=True), name="hidden")
    assert remote is not None
    hide = "mkdir -p .git/info && echo tests/test_four.py >> .git/info/exclude"
    plan = [
        {"tool": "write_file", "input": {"path": "tests/test_four.py", "content": BAD_TEST}},
        {"tool": "run_command", "input": {"command": hide}},
        {"tool": "finish", "input": {"summary": "nothing here"}},
        {"tool": "write_file", "input": {"path": "tests/test_four.py", "content": GOOD_TEST}},
        {"tool": "finish", "input": {"summary": "fixed the test"}},
    ]
    record, events = run_plan(system, remote, f"hidden-{unique}", plan)
    assert record["state"] == "completed", record
    gates = [e["detail"] for e in events if e["kind"] == "gate"]
    assert [g["approved"] for g in gates] == [False, True]
    assert gates[0]["results"][0]["status"] == "failed"
    assert gates[0]["commit"]  # gated after the commit step found the file
    branch = record["pushedBranch"]
    assert git(remote, "show", f"{branch}:tests/test_four.py") == GOOD_TEST.strip()
