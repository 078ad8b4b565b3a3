"""One trace per task, across the five service processes (issue 23, part 2).

The system as ``mosaic up`` runs it (NATS authorization on, each service its own
process), real git, agents as bare host processes, the model the real Anthropic SDK
talking to the fake Messages API server. The trace is read back the way the dashboard
reads it, ``GET /agents/{agentId}/trace``: each service publishes its finished spans on
NATS and the gateway keeps them in Valkey.

- A completed task: the gateway's ``spawn`` is the root; the spawner's ``attempt`` its
  child; under it the model calls (model and token counts), the tool calls, and the
  requests to gitops (worktree, commit, push, removal) and gates, each with the
  responder's span as its child, in the gitops and gates processes.
- A killed task: the gates reject its change, it runs a long command, an operator kills
  it. The kill is a span of the same trace and the killswitch's work its child: all
  five services in one tree.
- In both, no span holds the model key, an API token, the NATS passwords, a secret in a
  command line, the task's text or a file's content.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mosaic.client import MosaicClient
from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.fakes.messages_api import FakeMessagesAPI, FakeReply, RecordedRequest, reply, tool_use
from tests.systems import operator_http, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

API_KEY = "sk-ant-api03-trace-test-" + "k" * 40
COMMAND_SECRET = "ghp_" + "Q" * 36
"""A token in the agent's command line: user content a span must never show."""
PROMPT_MARKER = "purple-elephant-prompt-text"
FILE_MARKER = "content-marker-never-in-a-span"
COMPLETED_OPERATIONS = (
    "gitops.worktree.create",
    "gitops.commit",
    "gitops.base.status",
    "gitops.push",
    "gitops.worktree.remove",
    "gates.check",
)
USAGE = {"input_tokens": 123, "output_tokens": 45, "cache_read_input_tokens": 6}


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
            "ANTHROPIC_MODEL": "claude-trace-test",
            "MOSAIC_SANDBOX": "none",
            "TASK_ACK_WAIT_S": "10",
        },
    )
    with Supervisor(config) as supervisor:
        yield supervisor


@pytest.fixture
def http(system: Supervisor) -> Iterator[httpx.Client]:
    with operator_http(system, 30) as client:
        yield client


class Script:
    """The "model": per task, the answer for each of its turns."""

    def __init__(self) -> None:
        self.plans: dict[str, list[FakeReply]] = {}
        self.turns: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> FakeReply:
        first = request.messages[0]["content"]
        words = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)
        task = words.split()[1]  # "Task <id> for a worker agent."
        with self.lock:
            turn = self.turns.get(task, 0)
            self.turns[task] = turn + 1
            plan = self.plans[task]
            return plan[min(turn, len(plan) - 1)]


def spawn(http: httpx.Client, repo: Path, task_id: str) -> str:
    body = {
        "taskId": task_id,
        "agentType": "worker",
        "context": {
            "repository": str(repo),
            "branch": "main",
            "workItems": [f"Task text {PROMPT_MARKER} ({task_id})"],
        },
        "gateProfile": "minimal",
    }
    answer = http.post("/agents/spawn", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"])


def wait_trace(
    http: httpx.Client, agent_id: str, names: set[str], timeout: float = 30
) -> dict[str, Any]:
    """The agent's trace once it has a span of each of ``names`` (spans come a moment
    after they end)."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = http.get(f"/agents/{agent_id}/trace")
        if answer.status_code == 200:
            body = answer.json()
            if names <= {s["name"] for s in body["spans"]}:
                return body
        time.sleep(0.2)
    missing = names - {s["name"] for s in body.get("spans", [])}
    raise AssertionError(f"trace of {agent_id} lacks {missing}: {body}")


class Tree:
    """A trace's spans by id, with the checks every trace must pass."""

    def __init__(self, body: dict[str, Any], agent_id: str) -> None:
        self.trace_id: str = body["traceId"]
        self.spans: list[dict[str, Any]] = body["spans"]
        self.by_id = {s["spanId"]: s for s in self.spans}
        assert len(self.by_id) == len(self.spans), "a span id twice"
        for span in self.spans:
            assert set(span) == {
                "spanId",
                "parentId",
                "name",
                "service",
                "start",
                "end",
                "attributes",
            }
            assert span["attributes"]["mosaic.agent_id"] == agent_id, span
            assert span["end"] >= span["start"] > 1e12  # epoch milliseconds
        roots = [s for s in self.spans if s["parentId"] is None]
        assert len(roots) == 1, [
            (s["name"], s["service"], s["spanId"], s["parentId"]) for s in self.spans
        ]
        [root] = roots
        self.root = root
        for span in self.spans:  # one tree: every other span's parent is in the trace
            if span is not root:
                assert span["parentId"] in self.by_id, f"orphan {span['name']}: {span}"
        assert [s["start"] for s in self.spans] == sorted(s["start"] for s in self.spans)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["name"] == name]

    def one(self, name: str) -> dict[str, Any]:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name}"
        return found[0]

    def parent(self, span: dict[str, Any]) -> dict[str, Any]:
        parent: dict[str, Any] = self.by_id[span["parentId"]]
        return parent

    def served(self, operation: str, service: str, under: dict[str, Any]) -> None:
        """Each ``request <operation>`` under ``under`` has its responder's span, in
        ``service``, as its child."""
        requests = [
            s for s in self.named(f"request {operation}") if s["parentId"] == under["spanId"]
        ]
        assert requests, f"no request {operation} under {under['name']}"
        for request in requests:
            assert request["service"] == under["service"]
            children = [s for s in self.spans if s["parentId"] == request["spanId"]]
            assert [(c["name"], c["service"]) for c in children] == [(operation, service)]

    def services(self) -> set[str]:
        return {s["service"] for s in self.spans}


def assert_no_secret(system: Supervisor, body: dict[str, Any]) -> None:
    text = str(body)
    secrets = {
        "model key": API_KEY,
        "command token": COMMAND_SECRET,
        "task text": PROMPT_MARKER,
        "file content": FILE_MARKER,
        **system.tokens,
    }
    passwords = system.config.home / "secrets" / "nats"
    assert passwords.is_dir()  # NATS authorization is on: every service has a password
    for path in passwords.iterdir():
        secrets[f"NATS password of {path.name}"] = path.read_text().strip()
    for what, value in secrets.items():
        assert value, what
        assert value not in text, f"the trace holds the {what}"


def test_a_completed_tasks_trace_is_one_tree_across_the_services(
    system: Supervisor, model: FakeMessagesAPI, http: httpx.Client, remote_repo: Path, unique: str
) -> None:
    script = Script()
    model.fallback = script
    task = f"done-{unique}"
    script.plans[task] = [
        reply(
            tool_use("write_file", {"path": "hello.py", "content": f"# {FILE_MARKER}\n"}),
            usage=USAGE,
        ),
        reply(tool_use("finish", {"summary": "added hello.py"}), usage=USAGE),
    ]
    agent_id = spawn(http, remote_repo, task)
    record = wait_final(http, agent_id)
    assert record["state"] == "completed", record
    names = {"spawn", "attempt", "gitops.push", "gitops.worktree.remove", "gates.check"}
    tree = Tree(wait_trace(http, agent_id, names), agent_id)

    assert (tree.root["name"], tree.root["service"]) == ("spawn", "gateway")
    attempt = tree.one("attempt")
    assert attempt["service"] == "spawner"
    assert tree.parent(attempt) is tree.root
    assert attempt["attributes"]["mosaic.attempt"] == 1
    assert attempt["attributes"]["mosaic.outcome"] == "done"
    assert attempt["attributes"]["mosaic.task_id"] == task
    for operation in ("worktree.create", "commit", "base.status", "push", "worktree.remove"):
        tree.served(f"gitops.{operation}", "gitops", attempt)
    tree.served("gates.check", "gates", attempt)
    assert tree.one("gates.check")["attributes"]["mosaic.gates.approved"] is True

    calls = tree.named("model claude-trace-test")
    assert len(calls) == 2
    for call in calls:
        assert tree.parent(call) is attempt
        attributes = call["attributes"]
        assert attributes["gen_ai.request.model"] == "claude-trace-test"
        assert attributes["gen_ai.usage.input_tokens"] == 123
        assert attributes["gen_ai.usage.output_tokens"] == 45
        assert attributes["mosaic.usage.cache_read_tokens"] == 6
    tool = tree.one("tool write_file")
    assert tree.parent(tool) is attempt
    assert tool["attributes"]["mosaic.tool.error"] is False
    assert tree.services() == {"gateway", "spawner", "gitops", "gates"}
    assert {s["name"] for s in tree.spans} == {  # nothing else (no library's own spans)
        "spawn",
        "attempt",
        "model claude-trace-test",
        "tool write_file",
        *(f"request {op}" for op in COMPLETED_OPERATIONS),
        *COMPLETED_OPERATIONS,
    }, sorted({s["name"] for s in tree.spans})

    # the events the services recorded carry the trace id
    events = http.get(f"/agents/{agent_id}/events").json()
    assert events[0]["traceId"] == tree.trace_id  # the gateway's creation event
    assert {e["traceId"] for e in events} == {tree.trace_id}
    assert_no_secret(system, tree.__dict__)

    # the Python client reads the same trace
    with MosaicClient(system.gateway_url, token=system.tokens["MOSAIC_API_TOKEN"]) as client:
        read = client.get_agent_trace(agent_id)
    assert read.trace_id == tree.trace_id
    assert {s.span_id for s in read.spans} >= set(tree.by_id)


def test_a_killed_tasks_trace_holds_all_five_services(
    system: Supervisor, model: FakeMessagesAPI, http: httpx.Client, remote_repo: Path, unique: str
) -> None:
    script = Script()
    model.fallback = script
    task = f"kill-{unique}"
    broken = f"# {FILE_MARKER}\ndef add(a, b):\n    return a - b\n"
    script.plans[task] = [
        reply(tool_use("write_file", {"path": "app.py", "content": broken}), usage=USAGE),
        reply(tool_use("finish", {"summary": "changed add"}), usage=USAGE),  # gates reject
        reply(
            tool_use(
                "run_command",
                {"command": f"GITHUB_TOKEN={COMMAND_SECRET} sleep 120", "timeout": 300},
            ),
            usage=USAGE,
        ),
    ]
    agent_id = spawn(http, remote_repo, task)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # until the long command runs
        events = http.get(f"/agents/{agent_id}/events").json()
        called = [e for e in events if e["detail"].get("step") == "tool_called"]
        if any(e["detail"].get("tool") == "run_command" for e in called):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the agent never ran its command: {events}")
    time.sleep(0.5)
    killed = http.post(f"/agents/{agent_id}/kill")
    assert killed.status_code == 200, killed.text
    assert wait_final(http, agent_id)["state"] == "killed"
    names = {"kill", "killswitch.kill", "gitops.worktree.remove", "tool run_command"}
    tree = Tree(wait_trace(http, agent_id, names), agent_id)

    assert tree.services() == {"gateway", "spawner", "gitops", "gates", "killswitch"}
    attempt = tree.one("attempt")
    assert tree.parent(attempt) is tree.root
    assert attempt["attributes"]["mosaic.killed"] is True
    gates = tree.one("gates.check")
    assert gates["attributes"]["mosaic.gates.approved"] is False
    assert tree.parent(tree.parent(gates)) is attempt
    command = tree.one("tool run_command")
    assert tree.parent(command) is attempt
    assert command["attributes"]["mosaic.command"] == "sleep"  # the program, nothing else
    assert command["attributes"]["otel.status_description"] == "cancelled"
    kill = tree.one("kill")
    assert (kill["service"], tree.parent(kill)) == ("gateway", tree.root)
    ks = tree.one("killswitch.kill")
    assert (ks["service"], tree.parent(ks)) == ("killswitch", kill)
    assert ks["attributes"]["mosaic.kill.state"] == "killed"
    assert tree.parent(tree.parent(tree.one("gitops.worktree.remove"))) is attempt
    assert_no_secret(system, tree.__dict__)


def test_the_trace_of_an_unknown_agent_is_a_404_naming_it(http: httpx.Client) -> None:
    answer = http.get("/agents/feedfacefeedface/trace")
    assert answer.status_code == 404
    assert "feedfacefeedface" in answer.json()["error"]["message"]


def test_the_trace_needs_a_token(system: Supervisor) -> None:
    answer = httpx.get(f"{system.gateway_url}/agents/feedfacefeedface/trace")
    assert answer.status_code == 401
