"""The merge queue and the pre-push gate through the whole system (five service
processes, real NATS with per-service users, real Valkey, real git remotes, scripted
agents in the ``none`` sandbox, whose ``run_command`` runs real git in the worktree).

- Ten agents with ``options.merge = "queue"`` on one repository, half of them on one
  file (three on separate lines, two on the same line: one of them gets the conflict,
  rebases and resolves it): the base ends with every change, in queue order, no merge
  lost, the gates ran on every integrated state, and each merge is audited.
- A gate that fails on the integrated state leaves the base where it was.
- Without the queue: the agent rebases onto a base that moved; the pre-push gate (the
  moved base's gates) rejects the result, the agent is told, fixes it, and it is pushed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.conftest import git
from tests.systems import operator_http, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

IDENTITY = (
    "export GIT_AUTHOR_NAME=agent GIT_AUTHOR_EMAIL=agent@example.invalid "
    "GIT_COMMITTER_NAME=agent GIT_COMMITTER_EMAIL=agent@example.invalid GIT_EDITOR=true; "
)
SHARED = "# log\n\n--\n--\nA = 0\n--\n--\nB = 0\n--\n--\nC = 0\n"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("mq-home"),
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "scripted",
            "MOSAIC_SANDBOX": "none",
            "YOLO_MODE": "false",
            "TASK_ACK_WAIT_S": "10",
        },
    )
    with Supervisor(config) as supervisor:
        yield supervisor


@pytest.fixture
def http(system: Supervisor) -> Iterator[httpx.Client]:
    with operator_http(system) as client:
        yield client


def commit_to(remote: Path, tmp: Path, files: dict[str, str], message: str) -> str:
    """A human's commit on the remote's main, through a scratch clone; its sha."""
    clone = tmp / f"human-{len(list(tmp.glob('human-*')))}"
    git(tmp, "clone", "-q", str(remote), str(clone))
    for name, text in files.items():
        (clone / name).write_text(text)
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-q", "-m", message)
    git(clone, "push", "-q", "origin", "main")
    return git(clone, "rev-parse", "HEAD")


def spawn(http: httpx.Client, remote: Path, task_id: str, plan: list[dict[str, Any]],
          merge: str | None = "queue") -> str:  # fmt: skip
    options: dict[str, Any] = {"plan": plan, "maxRetries": 0}
    if merge is not None:
        options["merge"] = merge
    body = {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(remote), "branch": "main", "workItems": [task_id]},
        "options": options,
        "gateProfile": "minimal",
    }
    answer = http.post("/agents/spawn", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"])


def wait_running(http: httpx.Client, agent_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while http.get(f"/agents/{agent_id}/status").json()["state"] != "running":
        assert time.monotonic() < deadline, "the agent never started"
        time.sleep(0.1)


def events(http: httpx.Client, agent_id: str) -> list[dict[str, Any]]:
    return list(http.get(f"/agents/{agent_id}/events").json())


def sent_back(history: list[dict[str, Any]]) -> list[str]:
    """What the agent was told when its finish was sent back."""
    return [
        str(e["detail"]["reason"])
        for e in history
        if e["kind"] == "progress" and e["detail"].get("step") == "finish_sent_back"
    ]


def finish(summary: str = "done") -> dict[str, Any]:
    return {"tool": "finish", "input": {"summary": summary}}


def resolve_log_conflict(n: int) -> dict[str, Any]:
    """Rebase onto the fetched base; on the conflict keep the base's file plus our line."""
    script = (
        f"{IDENTITY}git rebase origin/main || {{ git show origin/main:shared.txt "
        f"| sed 's/^# log$/# log\\nentry {n}/' > shared.txt && git add shared.txt "
        "&& git rebase --continue; }"
    )
    return {"tool": "run_command", "input": {"command": script}}


def scratch_worktrees(system: Supervisor) -> list[Path]:
    """gitops' merge worktrees left in the cache (none once every merge ended)."""
    return list((system.config.home / "repos").glob("*_worktrees/merge-*"))


def test_ten_agents_merge_in_queue_order_with_gates_on_every_integrated_state(
    http: httpx.Client, system: Supervisor, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    ten_agents_through_the_queue(http, system, remote_repo, tmp_path, unique)


def ten_agents_through_the_queue(
    http: httpx.Client, system: Supervisor, remote_repo: Path, tmp_path: Path, unique: str
) -> list[dict[str, Any]]:
    """The ten-agent scenario (module doc), on whatever sandbox ``system`` runs; the
    agents' final records."""
    start = commit_to(remote_repo, tmp_path, {"shared.txt": SHARED}, "shared file")
    plans: list[list[dict[str, Any]]] = []
    for k in range(5):  # separate files
        write = {"tool": "write_file", "input": {"path": f"own_{k}.txt", "content": f"{k}\n"}}
        plans.append([write, finish()])
    for k, line in zip(range(5, 8), ("A", "B", "C"), strict=True):  # one file, own lines
        edit = {"tool": "edit_file", "input": {"path": "shared.txt", "old": f"{line} = 0",
                                               "new": f"{line} = {k}"}}  # fmt: skip
        plans.append([edit, finish()])
    for k in (8, 9):  # one file, the same line: the later one conflicts and resolves
        edit = {"tool": "edit_file", "input": {"path": "shared.txt", "old": "# log\n",
                                               "new": f"# log\nentry {k}\n"}}  # fmt: skip
        plans.append([edit, finish(), resolve_log_conflict(k), finish("resolved")])
    agents = [spawn(http, remote_repo, f"mq{k}-{unique}", plan) for k, plan in enumerate(plans)]
    records = [wait_final(http, agent, timeout=300) for agent in agents]
    assert [r["state"] for r in records] == ["completed"] * 10, records

    # every change is on the base
    for k in range(5):
        assert git(remote_repo, "show", f"main:own_{k}.txt") == str(k)
    shared = git(remote_repo, "show", "main:shared.txt")
    for expected in ("A = 5", "B = 6", "C = 7", "entry 8", "entry 9"):
        assert expected in shared, shared
    assert "<<<<<<<" not in shared

    # one linear chain of merges from the start to the tip, no gap, none lost: each
    # agent's range starts where the previous merge ended (queue order = base order)
    ranges = {r["agentId"]: r["mergedRange"] for r in records}
    assert all(ranges.values()), ranges
    by_start = {span.split("..")[0]: (agent, span.split("..")[1]) for agent, span in ranges.items()}
    assert len(by_start) == 10
    chain, cursor = [], start
    while cursor in by_start:
        agent, cursor = by_start[cursor]
        chain.append(agent)
    assert len(chain) == 10
    assert cursor == git(remote_repo, "rev-parse", "main")
    assert git(remote_repo, "rev-list", "--count", f"{start}..main") == "10"
    assert git(remote_repo, "rev-list", "--merges", f"{start}..main") == ""

    conflicted = []
    for record in records:
        agent = record["agentId"]
        history = events(http, agent)
        end = record["mergedRange"].split("..")[1]
        gates = [e["detail"] for e in history if e["kind"] == "gate"]
        # the gates ran on exactly the state that became the base, as pre-push
        assert any(
            g["phase"] == "pre-push" and g["approved"] and g["commit"] == end for g in gates
        ), gates
        positions = [e["detail"]["position"] for e in history
                     if e["detail"].get("step") == "merge_queue"]  # fmt: skip
        assert positions, "the record showed its queue position"
        assert positions[-1] == 1
        assert record["mergeQueuePosition"] is None
        assert record["pushedBranch"] == f"mosaic/agent-{agent}"
        assert record["salvageBranch"] is None  # its commits are on the remote: nothing lost
        assert git(remote_repo, "rev-parse", record["pushedBranch"]) == record["pushedCommit"]
        if any("Merge conflict" in text for text in sent_back(history)):
            conflicted.append(agent)
    assert len(conflicted) >= 1
    assert set(conflicted) <= {agents[8], agents[9]}
    # a landed merge is announced like a push: the other agent on that line heard of it
    (late,) = conflicted
    (early,) = {agents[8], agents[9]} - {late}
    overlaps = [e["detail"] for e in events(http, late) if e["kind"] == "overlap"]
    assert any(o["agentId"] == early for o in overlaps), overlaps

    audit = http.get("/audit", params={"kind": "merge", "limit": 1000}).json()
    audited = {e["detail"]["range"] for e in audit if e["agentId"] in agents}
    assert audited == set(ranges.values())
    assert scratch_worktrees(system) == []
    return records


def test_a_gate_failing_on_the_integrated_state_leaves_the_base_where_it_was(
    http: httpx.Client, system: Supervisor, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    marker = tmp_path / "base-moved"
    wait = f"for i in $(seq 1 600); do [ -f {marker} ] && exit 0; sleep 0.1; done; exit 1"
    broken_add = "def add(a, b):\n    return 5 if (a, b) == (2, 3) else a * b\n"
    plan = [
        {"tool": "write_file", "input": {"path": "app.py", "content": broken_add}},
        {"tool": "run_command", "input": {"command": wait}},
        finish(),  # passes its own tests; fails the one the base gained meanwhile
    ]  # then the plan is exhausted: every further end of turn is sent back the same way
    agent = spawn(http, remote_repo, f"mq-fail-{unique}", plan)
    wait_running(http, agent)
    new_test = (
        "import unittest\n\nimport app\n\n\nclass OneTest(unittest.TestCase):\n"
        "    def test_one(self):\n        self.assertEqual(app.add(1, 1), 2)\n"
    )
    moved = commit_to(remote_repo, tmp_path, {"test_one.py": new_test}, "a new test")
    marker.touch()
    record = wait_final(http, agent, timeout=300)

    assert git(remote_repo, "rev-parse", "main") == moved  # untouched
    assert "mosaic/agent-" + agent not in git(remote_repo, "branch", "--list")
    assert record["mergedRange"] is None
    assert record["mergeQueuePosition"] is None
    history = events(http, agent)
    gates = [e["detail"] for e in history if e["kind"] == "gate"]
    assert record["state"] == "failed"
    assert "finish attempts" in record["error"]
    pre_push = [g for g in gates if g["phase"] == "pre-push"]
    assert pre_push, gates
    assert not any(g["approved"] for g in pre_push)  # it never landed
    assert all(g["approved"] for g in gates if g["phase"] == "pre-commit")
    assert "test_one" in pre_push[0]["results"][0]["excerpt"]
    assert any("pre-push" in text for text in sent_back(history))
    assert http.get("/audit", params={"kind": "merge", "agentId": agent}).json() == []
    assert scratch_worktrees(system) == []


def test_pre_push_gate_rejects_a_rebased_head_that_breaks_the_moved_bases_test(
    http: httpx.Client, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    """The base moves (same line, plus a test and gates that run it) while the agent
    works; the agent rebases; its pre-commit gates (read at its original base) pass, the
    pre-push gates (read at the base it now builds on) fail; it fixes and pushes."""
    app = "VERSION = 1\n\n\ndef add(a, b):\n    return a + b\n"
    only_test_app = (
        'detect = false\n\n[gates]\ntests = "python3 -m unittest -q test_app"\nlint = false\n'
    )
    commit_to(remote_repo, tmp_path, {"app.py": app, ".mosaic/gates.toml": only_test_app}, "v1")
    marker = tmp_path / "base-moved"
    wait = f"for i in $(seq 1 600); do [ -f {marker} ] && exit 0; sleep 0.1; done; exit 1"
    sub = "\n\ndef sub(a, b):\n    return a - b\n"
    rebase = (
        f"{IDENTITY}git rebase origin/main || {{ git checkout --theirs app.py "
        "&& git add app.py && git rebase --continue; }"
    )
    fixed = app.replace("VERSION = 1", "VERSION = 2") + sub
    plan = [
        {"tool": "write_file", "input": {"path": "app.py",
                                         "content": app.replace("= 1", "= 10") + sub}},
        {"tool": "run_command", "input": {"command": wait}},
        finish(),  # conflict: the base changed VERSION too
        {"tool": "run_command", "input": {"command": rebase}},
        finish("rebased"),  # pre-push: the moved base's test_version fails
        {"tool": "write_file", "input": {"path": "app.py", "content": fixed}},
        finish("fixed"),
    ]  # fmt: skip
    agent = spawn(http, remote_repo, f"prepush-{unique}", plan, merge=None)
    wait_running(http, agent)
    version_test = (
        "import unittest\n\nimport app\n\n\nclass VersionTest(unittest.TestCase):\n"
        "    def test_version(self):\n        self.assertEqual(app.VERSION, 2)\n"
    )
    discover = only_test_app.replace("-q test_app", "discover -q")
    moved = commit_to(
        remote_repo,
        tmp_path,
        {
            "app.py": app.replace("= 1", "= 2"),
            "test_version.py": version_test,
            ".mosaic/gates.toml": discover,
        },
        "v2 with its test",
    )
    marker.touch()
    record = wait_final(http, agent, timeout=300)
    assert record["state"] == "completed", record

    history = events(http, agent)
    texts = sent_back(history)
    assert any("Merge conflict" in t and "app.py" in t for t in texts), texts
    assert any("pre-push" in t and "test_version" in t for t in texts), texts
    gates = [(e["detail"]["phase"], e["detail"]["approved"]) for e in history
             if e["kind"] == "gate"]  # fmt: skip
    assert gates == [
        ("pre-commit", True),  # first finish; then the push conflicts
        ("pre-commit", True),  # after the rebase, with the original base's gates
        ("pre-push", False),  # the moved base's gates on the rebased head
        ("pre-commit", True),
        ("pre-push", True),
    ]
    branch = record["pushedBranch"]
    assert git(remote_repo, "merge-base", "--is-ancestor", moved, branch) == ""
    pushed_app = git(remote_repo, "show", f"{branch}:app.py")
    assert "VERSION = 2" in pushed_app
    assert "def sub" in pushed_app


def test_a_base_moved_during_the_gates_is_integrated_again_never_forced(
    http: httpx.Client, system: Supervisor, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    """Someone pushes to the base while the queue's gates run on the integrated tree:
    the landing push is refused (not a fast-forward), nothing is overwritten, and the
    agent's change is integrated again onto the new base, gated again, and landed."""
    marks = tmp_path / "marks"
    marks.mkdir()
    hold = (
        'case "$PWD" in */merge-*)\n'
        f"  touch {marks}/in-gates\n"
        f"  i=0; while [ ! -f {marks}/go ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done;;\n"
        "esac\n"
    )
    gates = (
        'detect = false\n\n[gates]\ntests = "python3 -m unittest discover -q && sh hold.sh"\n'
        "lint = false\n"
    )
    commit_to(remote_repo, tmp_path, {"hold.sh": hold, ".mosaic/gates.toml": gates}, "hold")
    plan = [{"tool": "write_file", "input": {"path": "mine.txt", "content": "mine\n"}}, finish()]
    agent = spawn(http, remote_repo, f"mq-moved-{unique}", plan)
    deadline = time.monotonic() + 180
    while not (marks / "in-gates").exists():
        assert time.monotonic() < deadline, "the queue's gates never ran"
        time.sleep(0.1)
    moved = commit_to(remote_repo, tmp_path, {"human.txt": "pushed meanwhile\n"}, "human")
    (marks / "go").touch()
    record = wait_final(http, agent, timeout=300)

    assert record["state"] == "completed", record
    assert git(remote_repo, "show", "main:human.txt") == "pushed meanwhile"  # not overwritten
    assert git(remote_repo, "show", "main:mine.txt") == "mine"
    assert git(remote_repo, "rev-parse", "main~1") == moved
    start, end = record["mergedRange"].split("..")
    assert start == moved
    assert end == git(remote_repo, "rev-parse", "main")
    pre_push = [e["detail"] for e in events(http, agent)
                if e["kind"] == "gate" and e["detail"]["phase"] == "pre-push"]  # fmt: skip
    assert [g["approved"] for g in pre_push] == [True, True]
    assert pre_push[0]["commit"] != end  # the first integration, on the old base
    assert pre_push[1]["commit"] == end  # gated again on what landed
    assert scratch_worktrees(system) == []


def test_an_agent_killed_while_it_waits_leaves_the_queue(
    http: httpx.Client, system: Supervisor, remote_repo: Path, unique: str
) -> None:
    """Another spawner's agent holds the queue (a live lease); ours waits at #2 and is
    killed: its entry and lease are gone, the holder's is untouched, the base unchanged."""
    import asyncio

    from redis.asyncio import Redis

    from services.spawner.mergequeue import MergeQueue
    from shared.store import StateStore

    holder = f"holder-{unique}"

    async def in_valkey(action: str) -> list[str]:
        redis = Redis.from_url(system.valkey_url)
        try:
            queue = MergeQueue(StateStore(redis), lease_s=120.0)
            key = queue.queue_key(str(remote_repo), "main")
            if action == "hold":
                await queue.join(key, holder)
            elif action == "release":
                await queue.leave(key, holder)
            return await queue.entries(key)
        finally:
            await redis.aclose()

    before = git(remote_repo, "rev-parse", "main")
    asyncio.run(in_valkey("hold"))
    try:
        plan = [{"tool": "write_file", "input": {"path": "k.txt", "content": "k\n"}}, finish()]
        agent = spawn(http, remote_repo, f"mq-kill-{unique}", plan)
        deadline = time.monotonic() + 120
        while http.get(f"/agents/{agent}/status").json()["mergeQueuePosition"] != 2:
            assert time.monotonic() < deadline, "never queued behind the holder"
            time.sleep(0.1)
        assert asyncio.run(in_valkey("list")) == [holder, agent]
        assert http.post(f"/agents/{agent}/kill").status_code == 200
        record = wait_final(http, agent, timeout=60)
        assert record["state"] == "killed"
        deadline = time.monotonic() + 20
        while asyncio.run(in_valkey("list")) != [holder]:
            assert time.monotonic() < deadline, "the killed agent stayed in the queue"
            time.sleep(0.1)
        assert git(remote_repo, "rev-parse", "main") == before
        assert scratch_worktrees(system) == []
    finally:
        asyncio.run(in_valkey("release"))
