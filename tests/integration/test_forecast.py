"""The conflict forecast through the whole system (issue 17, item 3).

Five service processes over real NATS (with per-service permissions) and Valkey, real
git repositories, agents as bare host processes, the model the real Anthropic SDK
talking to the fake Messages API server. Three agents work on one repository: A and B
change the same line of ``calc.txt``, C a line far away. When A's push lands, B's next
tool result carries the note, B's status has an ``overlap`` event and its record lists
A; C, whose change does not meet A's, hears nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.conftest import git
from tests.fakes.messages_api import FakeMessagesAPI, FakeReply, RecordedRequest, reply, tool_use
from tests.fakes.messages_api import text as text_block
from tests.systems import operator_http, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OUTCOME = ("state", "error", "attempts", "attemptReasons", "turns", "overlaps", "pushedBranch")
API_KEY = "sk-ant-test-forecast"
CALC = "".join(f"line {n}\n" for n in range(1, 21))


@pytest.fixture(scope="module")
def model() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(api_key=API_KEY) as api:
        yield api


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, model: FakeMessagesAPI
) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("home"),
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "anthropic",
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": model.url,
            "MOSAIC_SANDBOX": "none",
            "TASK_ACK_WAIT_S": "10",
            "AGENT_MAX_TURNS": "150",
        },
    )
    with Supervisor(config) as supervisor:
        yield supervisor


@pytest.fixture
def calc_remote(remote_repo: Path, tmp_path: Path) -> Path:
    clone = tmp_path / "calc-seed"
    git(tmp_path, "clone", "-q", str(remote_repo), str(clone))
    (clone / "calc.txt").write_text(CALC)
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-qm", "calc")
    git(clone, "push", "-q", "origin", "main")
    return remote_repo


def with_line(number: int, content: str) -> str:
    lines = CALC.splitlines(keepends=True)
    lines[number - 1] = f"{content}\n"
    return "".join(lines)


def task_of(request: RecordedRequest) -> str:
    """The task id from the first user message ("Task <id> for a worker agent.")."""
    first = request.messages[0]["content"]
    words = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)
    return words.split()[1]


def conversation_turn(request: RecordedRequest) -> int:
    """Which model call of its attempt this is (1 for a conversation's first)."""
    return 1 + sum(1 for message in request.messages if message["role"] == "assistant")


def tool_result_texts(request: RecordedRequest) -> list[str]:
    out = []
    for block in request.tool_results():
        content = block.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        out.append(str(content))
    return out


class Agents:
    """The "model" of the three agents: each answers by its task, from what it has seen.

    A edits line 12 once B and C have made their edits, then finishes (and pushes).
    B edits line 12 too and waits (one-second commands) until a note reaches it.
    C edits line 2 and waits until B has its note and a few turns more, then finishes.
    """

    def __init__(self, a: str, b: str, c: str) -> None:
        self.a, self.b, self.c = a, b, c
        self.turns: dict[str, int] = {a: 0, b: 0, c: 0}
        self.noted: dict[str, list[str]] = {a: [], b: [], c: []}
        self.b_noted_at: int | None = None
        self.lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> FakeReply:
        with self.lock:
            task = task_of(request)
            turn = conversation_turn(request)  # a retried attempt starts over: edits again
            self.turns[task] = turn
            self.noted[task] += [t for t in tool_result_texts(request) if "Note: agent" in t]
            if task == self.a:
                return self._a(turn)
            if task == self.b:
                return self._b(turn)
            return self._c(turn)

    def _a(self, turn: int) -> FakeReply:
        if turn == 1:
            return reply(write("calc.txt", with_line(12, "twelve by A")))
        if self.turns[self.b] < 2 or self.turns[self.c] < 2:  # their edits are not made yet
            return reply(sleep(0.5))
        return reply(tool_use("finish", {"summary": "A changed line 12"}))

    def _b(self, turn: int) -> FakeReply:
        if turn == 1:
            return reply(write("calc.txt", with_line(12, "twelve by B")))
        if self.noted[self.b]:
            self.b_noted_at = self.b_noted_at or self.turns[self.c]
            return reply(tool_use("finish", {"summary": "B was told about A"}))
        return reply(sleep(1))

    def _c(self, turn: int) -> FakeReply:
        if turn == 1:
            return reply(write("calc.txt", with_line(2, "two by C")))
        if self.b_noted_at is not None and self.turns[self.c] > self.b_noted_at + 3:
            return reply(text_block("C is done"))
        return reply(sleep(1))


def write(path: str, content: str) -> dict[str, Any]:
    return tool_use("write_file", {"path": path, "content": content})


def sleep(seconds: float) -> dict[str, Any]:
    return tool_use("run_command", {"command": f"sleep {seconds}"})


def spawn(http: httpx.Client, repo: Path, task_id: str) -> str:
    body = {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": [f"Edit ({task_id})"]},
        "gateProfile": "minimal",
    }
    answer = http.post("/agents/spawn", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"])


def test_a_push_warns_the_overlapping_agent_only(
    system: Supervisor, model: FakeMessagesAPI, calc_remote: Path, unique: str
) -> None:
    a, b, c = (f"{name}-{unique}" for name in ("a", "b", "c"))
    agents = Agents(a, b, c)
    model.fallback = agents
    with operator_http(system, 10) as http:
        ids = {task: spawn(http, calc_remote, task) for task in (a, b, c)}
        records = {task: wait_final(http, ids[task], 240) for task in (a, b, c)}
        outcomes = {t: {k: records[t].get(k) for k in OUTCOME} for t in (a, b, c)}
        assert [records[t]["state"] for t in (a, b, c)] == ["completed"] * 3, outcomes
        a_branch, a_commit = records[a]["pushedBranch"], records[a]["pushedCommit"]
        assert a_branch == f"mosaic/agent-{ids[a]}"

        # B: the tool result the model saw carries the note, once, naming A, file, lines
        assert len(agents.noted[b]) == 1, agents.noted[b]
        note = agents.noted[b][0]
        assert f"Note: agent {ids[a]} changed calc.txt line 12 on {a_branch} (pushed" in note
        assert "Rebase onto it or avoid those lines." in note
        assert note.startswith("exit code: 0")  # appended to its command's result
        # ... its status has the overlap event, its record names A
        events = http.get(f"/agents/{ids[b]}/events").json()
        overlap = [e for e in events if e["kind"] == "overlap"]
        assert len(overlap) == 1, events
        assert overlap[0]["detail"]["agentId"] == ids[a]
        assert overlap[0]["detail"]["commit"] == a_commit
        assert overlap[0]["detail"]["files"] == ["calc.txt line 12"]
        assert [(o["agentId"], o["branch"], o["files"]) for o in records[b]["overlaps"]] == [
            (ids[a], a_branch, ["calc.txt line 12"])
        ]

        # C changed calc.txt too, ten lines away: no note, no event, nothing on its record
        assert agents.noted[c] == []
        assert agents.turns[c] > (agents.b_noted_at or 0) + 3  # it ran on after B's note
        c_events = http.get(f"/agents/{ids[c]}/events").json()
        assert not [e for e in c_events if e["kind"] == "overlap"]
        assert records[c]["overlaps"] == []
        # A, the pusher, is not warned about itself
        assert agents.noted[a] == []
        assert records[a]["overlaps"] == []
    model.fallback = None
