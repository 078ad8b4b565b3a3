"""The deployment's daily budget through the whole system (issue 23, budgets).

When the UTC day's spend reaches ``MOSAIC_BUDGET_USD_PER_DAY`` intake holds: spawning is
refused with a message naming the budget, ``GET /queue`` and ``GET /agents/hold`` show
the hold (``kind: budget``, through the same ``held()`` the spawn path asks), the audit
trail has a ``budget_hold`` entry, and an admin's resume lifts it. Running agents finish
(``finish``) or stop at their next model call (``stop``, failed with reason ``budget``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosaic.supervisor import Supervisor
from tests.fakes.messages_api import FakeMessagesAPI, FakeReply, RecordedRequest, reply, tool_use
from tests.integration.budgets.system import (
    API_KEY,
    client,
    running_system,
    spawn_body,
    task_of,
    usage,
    with_cheap_gates,
    write,
)
from tests.systems import wait_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LIMIT = "0.01"
BIG = usage(i=1000, o=1000)  # $0.018 at the sonnet price: one call spends the day
SMALL = usage(i=1, o=1)


@pytest.fixture(scope="module")
def model() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(api_key=API_KEY) as api:
        yield api


@pytest.fixture
def finishing(tmp_path: Path, model: FakeMessagesAPI) -> Iterator[Supervisor]:
    with running_system(tmp_path / "home", model, MOSAIC_BUDGET_USD_PER_DAY=LIMIT) as system:
        yield system


@pytest.fixture
def stopping(tmp_path: Path, model: FakeMessagesAPI) -> Iterator[Supervisor]:
    env = {"MOSAIC_BUDGET_USD_PER_DAY": LIMIT, "MOSAIC_BUDGET_ON_EXHAUSTED": "stop"}
    with running_system(tmp_path / "home", model, **env) as system:
        yield system


def finish_after_write(name: str, first_usage: dict[str, int]) -> list[FakeReply]:
    return [
        reply(write(f"{name}.txt", f"{name}\n"), usage=first_usage),
        reply(tool_use("finish", {"summary": f"wrote {name}.txt"}), usage=SMALL),
    ]


class ByTask:
    """Each task's replies in order; a task's last reply repeats."""

    def __init__(self) -> None:
        self.turns: dict[str, list[FakeReply]] = {}
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> FakeReply:
        with self.lock:
            task = task_of(request)
            self.calls[task] = self.calls.get(task, 0) + 1
            answers = self.turns[task]
            return answers[min(self.calls[task], len(answers)) - 1]


def wait_calls(script: ByTask, task: str, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while script.calls.get(task, 0) < at_least:
        assert time.monotonic() < deadline, f"{task} made {script.calls.get(task, 0)} calls"
        time.sleep(0.1)


def test_the_spent_day_holds_intake_until_an_admin_resumes(
    finishing: Supervisor, model: FakeMessagesAPI, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    repo = with_cheap_gates(remote_repo, tmp_path)
    first, second = f"day1-{unique}", f"day2-{unique}"
    script = ByTask()
    script.turns = {first: finish_after_write("one", BIG), second: finish_after_write("two", SMALL)}
    model.fallback = script
    with client(finishing) as http, client(finishing, admin=True) as admin:
        agent = http.post("/agents/spawn", json=spawn_body(repo, first)).json()["agentId"]
        record = wait_final(http, agent)
        # the agent that spent the day finishes its task (MOSAIC_BUDGET_ON_EXHAUSTED=finish)
        assert record["state"] == "completed", record
        assert record["spend"]["usd"] >= float(LIMIT)

        refused = http.post("/agents/spawn", json=spawn_body(repo, second))
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "budget_exhausted"
        assert "daily budget of $0.01 reached" in error["message"]
        assert "POST /agents/resume" in error["message"]
        assert http.get(f"/agents?taskId={second}").json()["total"] == 0  # nothing stored

        queue = http.get("/queue").json()
        assert queue["hold"]["held"] is True
        assert queue["hold"]["kind"] == "budget"
        assert queue["budgetUsdPerDay"] == pytest.approx(0.01)
        assert http.get("/agents/hold").json()["kind"] == "budget"
        spend = http.get("/spend").json()
        assert spend["remainingUsd"] == 0
        assert spend["hold"]["kind"] == "budget"
        assert spend["today"]["usd"] == pytest.approx(0.018 + 18e-6, rel=1e-3)
        entries = admin.get("/audit", params={"kind": "budget_hold"}).json()
        assert len(entries) == 1, entries
        assert entries[0]["agentId"] == agent
        assert "daily budget of $0.01 reached" in entries[0]["reason"]

        assert http.post("/agents/resume").status_code == 403  # admins only
        lifted = admin.post("/agents/resume")
        assert lifted.status_code == 200, lifted.text
        assert lifted.json()["held"] is False
        resumes = admin.get("/audit", params={"kind": "resume"}).json()
        assert resumes[-1]["detail"]["budgetLifted"] is True

        accepted = http.post("/agents/spawn", json=spawn_body(repo, second))
        assert accepted.status_code == 202, accepted.text
        record = wait_final(http, accepted.json()["agentId"])
        assert record["state"] == "completed", record
        assert http.get("/queue").json()["hold"]["held"] is False


def test_with_stop_running_agents_stop_at_their_next_model_call(
    stopping: Supervisor, model: FakeMessagesAPI, remote_repo: Path, unique: str
) -> None:
    runner, spender = f"run-{unique}", f"spend-{unique}"
    script = ByTask()
    script.turns = {
        runner: [
            reply(write("partial.txt", "work in progress\n"), usage=SMALL),
            reply(tool_use("run_command", {"command": "sleep 0.3"}), usage=SMALL),
        ],
        spender: [reply(write("big.txt", "x\n"), usage=BIG)],
    }
    model.fallback = script
    with client(stopping) as http:
        running = http.post("/agents/spawn", json=spawn_body(remote_repo, runner)).json()
        wait_calls(script, runner, 2)
        spending = http.post("/agents/spawn", json=spawn_body(remote_repo, spender)).json()
        spent = wait_final(http, spending["agentId"])
        stopped = wait_final(http, running["agentId"])
        refused = http.post("/agents/spawn", json=spawn_body(remote_repo, f"late-{unique}"))

    for record in (spent, stopped):
        assert record["state"] == "failed", record
        assert record["stopReason"] == "budget"
        assert "the deployment's daily budget of $0.01 is spent" in record["error"]
    # the runner's work so far is salvaged; the spender stopped before its write ran
    assert stopped["salvageBranch"] == f"mosaic/salvage/{stopped['agentId']}"
    assert spent["salvageBranch"] is None
    assert script.calls[spender] == 1
    assert refused.status_code == 503


def test_spawning_is_not_refused_by_a_kill_all_hold(
    finishing: Supervisor, remote_repo: Path, unique: str
) -> None:
    """A kill-all's hold queues the task (it waits for the resume): only the budget's
    hold refuses, since the day's budget cannot be spent on it."""
    with client(finishing, admin=True) as admin:
        admin.post("/agents/kill-all").raise_for_status()
        assert admin.get("/agents/hold").json()["kind"] == "killall"
        queued = admin.post("/agents/spawn", json=spawn_body(remote_repo, f"ka-{unique}"))
        assert queued.status_code == 202, queued.text
        admin.post("/agents/resume").raise_for_status()
