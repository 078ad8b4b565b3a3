"""Per-task budgets and spend through the whole system (issue 23, budgets).

Five service processes over real NATS and Valkey, real git, agents as host processes,
the model the real Anthropic SDK talking to the fake Messages API, which reports the
usage each test chooses. A task with a token budget stops at it (failed, reason
``budget``, its work salvaged, no further model call); spend adds up across the worker's
calls and the AI reviewer's (strict profile), in the status, ``GET /spend`` and the
Prometheus counters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosaic.supervisor import Supervisor
from tests.fakes.messages_api import FakeMessagesAPI, FakeReply, RecordedRequest, reply, tool_use
from tests.integration.budgets.system import (
    API_KEY,
    MODEL,
    client,
    is_review,
    running_system,
    salvaged_file,
    sonnet_usd,
    spawn_body,
    task_of,
    usage,
    with_cheap_gates,
    write,
)
from tests.systems import wait_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def model() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(api_key=API_KEY) as api:
        yield api


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def system(home: Path, model: FakeMessagesAPI) -> Iterator[Supervisor]:
    with running_system(home, model) as supervisor:
        yield supervisor


class Script:
    """Answers each task's calls from its own list, in order; counts the calls."""

    def __init__(self, turns: dict[str, list[FakeReply]], review: FakeReply | None = None):
        self.turns = turns
        self.review = review
        self.calls: dict[str, int] = dict.fromkeys(turns, 0)
        self.reviews = 0
        self.lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> FakeReply:
        with self.lock:
            if is_review(request):
                assert self.review is not None, "no review was expected"
                self.reviews += 1
                return self.review
            task = task_of(request)
            self.calls[task] += 1
            return self.turns[task][self.calls[task] - 1]


def test_a_task_stops_at_its_token_budget_with_its_work_salvaged(
    system: Supervisor, model: FakeMessagesAPI, home: Path, remote_repo: Path, unique: str
) -> None:
    task = f"tb-{unique}"
    each = usage(i=100, o=100, r=400)  # 600 tokens a call: the second reaches 1000
    script = Script(
        {
            task: [
                reply(write("kept.txt", "written before the budget ran out\n"), usage=each),
                reply(write("never.txt", "the budget stops this call's tools\n"), usage=each),
                reply(tool_use("finish", {"summary": "too late"}), usage=each),
            ]
        }
    )
    model.fallback = script
    with client(system) as http:
        body = spawn_body(remote_repo, task, options={"budget": {"tokens": 1000}})
        accepted = http.post("/agents/spawn", json=body)
        assert accepted.status_code == 202, accepted.text
        agent = accepted.json()["agentId"]
        record = wait_final(http, agent)
        events = http.get(f"/agents/{agent}/events").json()

    assert record["state"] == "failed", record
    assert record["taskState"] == "failed"
    assert record["stopReason"] == "budget"
    assert record["error"] == "budget: task budget of 1000 tokens reached (1200 used)"
    assert record["attempts"] == 1  # not retried
    assert script.calls[task] == 2  # no model call after the stop
    assert record["spend"] == {
        "usd": pytest.approx(2 * sonnet_usd(i=100, o=100, r=400)),
        "inputTokens": 200,
        "outputTokens": 200,
        "cacheWriteTokens": 0,
        "cacheReadTokens": 800,
    }
    final = [e for e in events if e["kind"] == "state" and e["state"] == "failed"]
    assert final[-1]["detail"]["reason"] == "budget"
    # salvaged like a kill: the first call's file is kept, the second's never written
    assert record["salvageBranch"] == f"mosaic/salvage/{agent}"
    kept = salvaged_file(home, remote_repo, record["salvageBranch"], "kept.txt")
    assert kept == "written before the budget ran out"
    assert salvaged_file(home, remote_repo, record["salvageBranch"], "never.txt") is None
    assert record["pushedBranch"] is None


def test_a_dollar_budget_counts_the_reviewers_call_too(
    system: Supervisor, model: FakeMessagesAPI, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    repo = with_cheap_gates(remote_repo, tmp_path)
    task = f"usd-{unique}"
    worker = usage(i=1000, o=1000)  # $0.018 a call
    script = Script(
        {
            task: [
                reply(write("a.txt", "a\n"), usage=worker),
                reply(tool_use("finish", {"summary": "wrote a.txt"}), usage=worker),
            ]
        },
        review=reply(
            tool_use("submit_review", {"confidence": 0.99, "approve": True, "findings": []}),
            usage=usage(i=10_000, o=1000),  # $0.045: the worker alone stays under $0.05
        ),
    )
    model.fallback = script
    with client(system) as http:
        body = spawn_body(repo, task, options={"budget": {"usd": 0.05}}, gateProfile="strict")
        agent = http.post("/agents/spawn", json=body).json()["agentId"]
        record = wait_final(http, agent)
    assert script.reviews == 1
    assert record["state"] == "failed", record
    assert record["stopReason"] == "budget"
    assert "task budget of $0.0500 reached" in record["error"]
    assert record["spend"]["usd"] == pytest.approx(2 * 0.018 + 0.045)


def test_spend_adds_up_across_worker_and_reviewer_calls(
    system: Supervisor, model: FakeMessagesAPI, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    repo = with_cheap_gates(remote_repo, tmp_path)
    task = f"sum-{unique}"
    first, second = usage(i=120, o=80, w=2000, r=0), usage(i=30, o=40, w=100, r=2100)
    review = usage(i=3000, o=150, w=0, r=0)
    script = Script(
        {
            task: [
                reply(write("a.txt", "a\n"), usage=first),
                reply(tool_use("finish", {"summary": "wrote a.txt"}), usage=second),
            ]
        },
        review=reply(
            tool_use("submit_review", {"confidence": 0.99, "approve": True, "findings": []}),
            usage=review,
        ),
    )
    model.fallback = script
    with client(system) as http:
        before = http.get("/spend").json()["today"]
        body = spawn_body(repo, task, gateProfile="strict")
        agent = http.post("/agents/spawn", json=body).json()["agentId"]
        record = wait_final(http, agent)
        after = http.get("/spend").json()["today"]
        metrics = http.get("/metrics").text
        queue = http.get("/queue").json()

    assert record["state"] == "completed", record
    assert script.reviews == 1
    gate = next(g for g in record["gates"] if g["name"] == "ai-review")
    assert gate["usage"]["inputTokens"] == 3000
    expected_usd = sonnet_usd(150, 120, 2100, 2100) + sonnet_usd(3000, 150)
    assert record["spend"] == {
        "usd": pytest.approx(expected_usd),
        "inputTokens": 120 + 30 + 3000,
        "outputTokens": 80 + 40 + 150,
        "cacheWriteTokens": 2000 + 100,
        "cacheReadTokens": 2100,
    }
    # the day and the task type grew by exactly this agent's spend
    assert after["usd"] - before["usd"] == pytest.approx(expected_usd)
    assert after["inputTokens"] - before["inputTokens"] == 3150
    grown = after["byType"]["worker"]["usd"] - before.get("byType", {}).get("worker", {}).get(
        "usd", 0.0
    )
    assert grown == pytest.approx(expected_usd)
    assert after["byModel"][MODEL] >= expected_usd
    assert queue["spentTodayUsd"] == pytest.approx(after["usd"], rel=1e-4)
    assert queue["hold"] == {"held": False, "kind": None, "reason": None,
                             "requestedBy": None, "at": None}  # fmt: skip
    usd_line = f'mosaic_spend_usd_total{{agent_type="worker",model="{MODEL}"}}'
    assert usd_line in metrics, metrics
    assert (
        f'mosaic_spend_tokens_total{{agent_type="worker",kind="cache_read_tokens",model="{MODEL}"}}'
        in metrics
    )


def test_a_bad_budget_is_refused_naming_the_field(system: Supervisor, remote_repo: Path) -> None:
    with client(system) as http:
        for budget, field in (
            ({"tokens": 0}, "options.budget.tokens"),
            ({"usd": -2.5}, "options.budget.usd"),
            ({"dollars": 1}, "options.budget.dollars"),
            ({"tokens": "100"}, "options.budget.tokens"),
            ({}, "options.budget"),
        ):
            answer = http.post(
                "/agents/spawn", json=spawn_body(remote_repo, "bad", options={"budget": budget})
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["field"] == field, answer.text
