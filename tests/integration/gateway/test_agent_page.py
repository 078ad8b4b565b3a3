"""The reads behind the agent's page: the conversation (recorded by the real loop with
the scripted provider on a real sandbox), the diff (asked of a real gitops over a real
nats-server, workspace then pushed commit) and the gate outputs; auth, 404s, paging, and
a secret the agent wrote never coming back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.nats import NatsBroker

from services.gitops.app import create_app as create_gitops
from services.gitops.settings import GitOpsSettings
from services.spawner.runtime.loop import run_agent
from services.spawner.runtime.providers import make_provider
from services.spawner.runtime.types import Bounds
from shared import subjects
from shared.bus import make_broker, request
from shared.messages.agents import AgentPatch
from shared.messages.conversation import ENTRY_MAX_CHARS, ConversationEntry
from shared.messages.diffs import DiffFound, DiffRequested
from shared.messages.gitops import (
    CommitMade,
    Integrated,
    IntegrateRequested,
    Landed,
    LandRequested,
    PushDone,
    WorktreeReady,
    WorktreeRemoved,
)
from shared.sandbox.base import Limits, SandboxSpec
from shared.sandbox.host import HostSandboxFactory
from shared.settings import GitSettings, HomeSettings, ModelSettings, NatsSettings, host_id
from shared.subjects import GitOp
from tests.fakes.agents import Progress, make_spec
from tests.integration.gateway.conftest import Gateway, spawn_body
from tests.integration.gitops.conftest import commit_req, push_req, rm_req, wt_req


def on_host(operation: GitOp) -> str:
    """The subject of ``operation`` on this machine's host (the services' default)."""
    return subjects.gitops(host_id(), operation)


pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# built, so no file of the project holds a token-shaped string
SECRET = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


async def new_agent(client: httpx.AsyncClient, repo: Path, task_id: str) -> tuple[str, str]:
    answer = await client.post("/agents/spawn", json=spawn_body(repo, task_id))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"]), task_id


@pytest.fixture
async def gitops(nats_url: str, tmp_path: Path) -> AsyncIterator[NatsBroker]:
    """A real gitops service on the test's nats-server, and a client broker to drive it."""
    app = create_gitops(
        NatsSettings(nats_url=nats_url),
        HomeSettings(mosaic_home=tmp_path / "gitops-home"),
        GitSettings(git_author_name="Page Agent", git_author_email="page@test.invalid"),
        GitOpsSettings(network_timeout=20, local_timeout=20),
    )
    assert app.broker is not None
    async with app.broker:
        await app.broker.start()
        caller = make_broker(NatsSettings(nats_url=nats_url), "agent-page-test")
        async with caller:
            await caller.start()
            yield caller


async def run_scripted(
    gateway: Gateway, agent_id: str, worktree: Path, tmp_path: Path, plan: list[dict[str, Any]]
) -> None:
    """The real loop, scripted, recording into the gateway's store as the spawner does."""

    async def keep(entries: list[ConversationEntry]) -> None:
        await gateway.store.append_conversation(agent_id, entries)

    spec = make_spec(plan=plan, agent_id=agent_id)
    box = await HostSandboxFactory(tmp_root=tmp_path).create(
        SandboxSpec(
            agent_id=agent_id, task_id="t", worktree=worktree, limits=Limits(cpu_seconds=30)
        )
    )
    try:
        provider = make_provider(ModelSettings(MOSAIC_PROVIDER="scripted"), spec)
        outcome = await run_agent(spec, box, provider, Bounds(), Progress(), transcript=keep)
    finally:
        await box.close()
    assert outcome.status == "finished", outcome.reason


async def test_conversation_is_recorded_paged_and_masked(
    gateway: Gateway, operator: httpx.AsyncClient, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    agent_id, _ = await new_agent(operator, remote_repo, f"conv-{unique}")
    worktree = tmp_path / "work"
    worktree.mkdir()
    plan = [
        {"tool": "write_file", "input": {"path": "creds.env", "content": f"TOKEN={SECRET}\n"}},
        {"tool": "run_command", "input": {"command": "cat creds.env; echo done-reading"}},
        {
            "tool": "write_file",
            "input": {"path": "big.txt", "content": "x" * (ENTRY_MAX_CHARS * 2)},
        },
        {"tool": "finish", "input": {"summary": "read the credentials"}},
    ]
    await run_scripted(gateway, agent_id, worktree, tmp_path, plan)
    assert SECRET in (worktree / "creds.env").read_text()  # the agent really wrote it

    whole = await operator.get(f"/agents/{agent_id}/conversation", params={"limit": 200})
    assert whole.status_code == 200, whole.text
    assert SECRET not in whole.text
    body = whole.json()
    kinds = [(e["kind"], e.get("tool")) for e in body["entries"]]
    assert kinds[0] == ("task", None)
    assert ("tool_call", "run_command") in kinds
    result = next(
        e for e in body["entries"] if e["kind"] == "tool_result" and e["tool"] == "run_command"
    )
    assert "done-reading" in result["text"]
    assert "TOKEN=***" in result["text"]
    big = next(e for e in body["entries"] if e["kind"] == "tool_call" and "xxxx" in e["text"])
    assert big["truncated"] is True
    assert len(big["text"]) < ENTRY_MAX_CHARS + 100
    assert body["total"] == len(body["entries"])
    assert body["dropped"] == 0

    page = (await operator.get(f"/agents/{agent_id}/conversation?offset=1&limit=2")).json()
    assert page["offset"] == 1
    assert page["limit"] == 2
    assert page["total"] == body["total"]
    assert page["entries"] == body["entries"][1:3]


async def test_conversation_auth_404_and_paging_errors(
    gateway: Gateway, operator: httpx.AsyncClient, remote_repo: Path, unique: str
) -> None:
    agent_id, _ = await new_agent(operator, remote_repo, f"conv-err-{unique}")
    path = f"/agents/{agent_id}/conversation"
    async with gateway.client(None) as anonymous, gateway.client("not-a-token") as wrong:
        for client in (anonymous, wrong):
            for read in ("conversation", "diff", "gates"):
                answer = await client.get(f"/agents/{agent_id}/{read}")
                assert answer.status_code == 401, (read, answer.text)
    missing = await operator.get("/agents/nobody-here/conversation")
    assert missing.status_code == 404
    assert "nobody-here" in missing.json()["error"]["message"]
    for query in ("limit=0", "limit=201", "offset=-1", "limit=abc", "offset=1.5", "page=2"):
        bad = await operator.get(f"{path}?{query}")
        assert bad.status_code == 422, (query, bad.text)
        assert bad.json()["error"]["code"] == "invalid_request"
    empty = (await operator.get(path)).json()
    assert empty == {
        "agentId": agent_id,
        "entries": [],
        "offset": 0,
        "limit": 50,
        "total": 0,
        "dropped": 0,
    }


async def test_conversation_is_capped_and_goes_with_the_agent(
    gateway: Gateway, operator: httpx.AsyncClient, remote_repo: Path, unique: str
) -> None:
    agent_id, task_id = await new_agent(operator, remote_repo, f"conv-cap-{unique}")
    store = gateway.store
    entries = [ConversationEntry(kind="model", text=f"turn {n}", turn=n) for n in range(7)]
    await store.append_conversation(agent_id, entries[:4], cap=5)
    await store.append_conversation(agent_id, entries[4:], cap=5)
    page = await store.conversation(agent_id, 0, 10)
    assert [e.text for e in page.entries] == [f"turn {n}" for n in range(2, 7)]
    assert (page.total, page.dropped) == (5, 2)
    await store.delete_agent(agent_id, task_id)
    assert not await store.redis.exists(store.key("agent", agent_id, "conversation"))
    assert not await store.redis.exists(store.key("agent", agent_id, "conversation", "dropped"))
    with pytest.raises(Exception, match="no agent"):  # a deleted agent's does not grow back
        await store.append_conversation(agent_id, entries[:1])


async def test_gate_outputs_are_listed_masked(
    gateway: Gateway, operator: httpx.AsyncClient, remote_repo: Path, unique: str
) -> None:
    agent_id, task_id = await new_agent(operator, remote_repo, f"gates-{unique}")
    results = [
        {"name": "tests", "status": "failed", "duration_ms": 1234,
         "excerpt": f"FAILED test_x\nleaked {SECRET}\n", "command": "pytest -q"},
        {"name": "lint", "status": "passed", "duration_ms": 56, "excerpt": "ok"},
    ]  # fmt: skip
    await gateway.tracker.record(
        agent_id, task_id, "gate",
        {"approved": False, "phase": "pre-commit", "results": results, "commit": "c" * 40},
    )  # fmt: skip
    answer = await operator.get(f"/agents/{agent_id}/gates")
    assert answer.status_code == 200, answer.text
    assert SECRET not in answer.text
    (run,) = answer.json()["runs"]
    assert run["approved"] is False
    assert run["phase"] == "pre-commit"
    tests, lint = run["gates"]
    assert tests["name"] == "tests"
    assert tests["status"] == "failed"
    assert tests["durationMs"] == 1234
    assert tests["command"] == "pytest -q"
    assert "FAILED test_x" in tests["output"]
    assert "leaked ***" in tests["output"]
    assert lint == {"name": "lint", "status": "passed", "durationMs": 56, "output": "ok",
                    "figure": None, "command": None}  # fmt: skip
    assert (await operator.get("/agents/nobody-here/gates")).status_code == 404


async def test_diff_from_the_workspace_then_from_the_pushed_commit(
    gateway: Gateway, gitops: NatsBroker, operator: httpx.AsyncClient, remote_repo: Path,
    unique: str,
) -> None:  # fmt: skip
    agent_id, task_id = await new_agent(operator, remote_repo, f"diff-{unique}")
    path = f"/agents/{agent_id}/diff"
    before = await operator.get(path)  # queued: no repository yet, nothing pushed
    assert before.status_code == 404, before.text
    assert before.json()["error"]["code"] == "no_diff"
    assert agent_id in before.json()["error"]["message"]

    ready = await request(
        gitops, on_host(GitOp.WORKTREE_CREATE), wt_req(remote_repo, agent_id, task_id),
        WorktreeReady, 20,
    )  # fmt: skip
    assert ready.error is None, ready.error
    work = Path(ready.path or "")
    (work / "app.py").write_text("def add(a, b):\n    return a + b + 0\n")
    (work / "notes.md").write_text(f"the key is {SECRET}\n")  # untracked, never scanned
    (work / "logo.bin").write_bytes(b"\x00\x01\x02PNGDATA\x00" * 50)

    live = await operator.get(path)
    assert live.status_code == 200, live.text
    assert SECRET not in live.text
    diff = live.json()
    assert diff["source"] == "workspace"
    assert diff["baseBranch"] == "main"
    assert diff["branch"] is None or diff["branch"].startswith("mosaic/")
    files = {f["path"]: f for f in diff["files"]}
    assert set(files) == {"app.py", "notes.md", "logo.bin"}
    assert files["logo.bin"]["binary"] is True
    assert files["logo.bin"]["added"] is None
    assert files["app.py"]["added"] == 1
    assert files["app.py"]["deleted"] == 1
    assert "+    return a + b + 0" in diff["patch"]
    assert "the key is ***" in diff["patch"]
    assert "Binary files" in diff["patch"]
    assert "PNGDATA" not in diff["patch"]
    assert not diff["truncated"]
    assert len(diff["baseCommit"]) == 40

    (work / "notes.md").unlink()  # the push scan would refuse it
    made = await request(
        gitops,
        on_host(GitOp.COMMIT),
        commit_req(remote_repo, agent_id, task_id),
        CommitMade,
        20,
    )
    assert made.error is None, made.error
    pushed = await request(
        gitops,
        on_host(GitOp.PUSH),
        push_req(remote_repo, agent_id, task_id),
        PushDone,
        20,
    )
    assert pushed.error is None, pushed.error
    assert pushed.commit is not None
    removed = await request(
        gitops, on_host(GitOp.WORKTREE_REMOVE), rm_req(remote_repo, agent_id, task_id),
        WorktreeRemoved, 20,
    )  # fmt: skip
    assert removed.error is None, removed.error
    assert not work.exists()
    gone = await operator.get(path)  # repository gone, push not recorded on the agent
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "no_diff"

    await gateway.store.update(
        agent_id, AgentPatch(pushed_commit=pushed.commit, pushed_branch=pushed.remote_branch)
    )
    after = await operator.get(path)
    assert after.status_code == 200, after.text
    diff = after.json()
    assert diff["source"] == "pushed"
    assert diff["headCommit"] == pushed.commit
    assert diff["branch"] == pushed.remote_branch
    assert {f["path"] for f in diff["files"]} == {"app.py", "logo.bin"}
    assert "+    return a + b + 0" in diff["patch"]

    unknown = await operator.get("/agents/nobody-here/diff")
    assert unknown.status_code == 404
    assert "nobody-here" in unknown.json()["error"]["message"]


async def test_diff_of_a_merged_agent_is_what_its_merge_added(
    gateway: Gateway, gitops: NatsBroker, operator: httpx.AsyncClient, remote_repo: Path,
    unique: str,
) -> None:  # fmt: skip
    """Through the merge queue the base branch holds the agent's commit afterwards: the
    fork point is found from the base before the merge (``mergedRange``), else the diff
    would be empty."""
    agent_id, task_id = await new_agent(operator, remote_repo, f"merged-{unique}")
    where = {"agent_id": agent_id, "task_id": task_id, "repository": str(remote_repo)}
    ready = await request(
        gitops, on_host(GitOp.WORKTREE_CREATE), wt_req(remote_repo, agent_id, task_id),
        WorktreeReady, 20,
    )  # fmt: skip
    (Path(ready.path or "") / "merged.txt").write_text("merged\n")
    made = await request(
        gitops,
        on_host(GitOp.COMMIT),
        commit_req(remote_repo, agent_id, task_id),
        CommitMade,
        20,
    )
    assert made.error is None, made.error
    done = await request(
        gitops,
        on_host(GitOp.INTEGRATE),
        IntegrateRequested(**where),
        Integrated,
        20,
    )
    assert done.error is None, done.error
    assert done.commit
    assert done.base_commit
    assert done.head
    landed = await request(
        gitops, on_host(GitOp.LAND),
        LandRequested(**where, commit=done.commit, onto=done.base_commit, head=done.head),
        Landed, 20,
    )  # fmt: skip
    assert landed.error is None, landed.error
    assert landed.range
    await request(
        gitops, on_host(GitOp.WORKTREE_REMOVE), rm_req(remote_repo, agent_id, task_id),
        WorktreeRemoved, 20,
    )  # fmt: skip
    await gateway.store.update(
        agent_id,
        AgentPatch(pushed_commit=landed.head, pushed_branch=landed.remote_branch,
                   merged_range=landed.range),
    )  # fmt: skip
    naive = await request(
        gitops, on_host(GitOp.DIFF),
        DiffRequested(**where, pushed_commit=landed.head), DiffFound, 20,
    )  # fmt: skip
    assert naive.error is None, naive.error
    assert naive.files == ()  # from origin/main alone: main already holds the commit
    answer = await operator.get(f"/agents/{agent_id}/diff")
    assert answer.status_code == 200, answer.text
    diff = answer.json()
    assert diff["source"] == "pushed"
    assert [f["path"] for f in diff["files"]] == ["merged.txt"]
    assert diff["baseCommit"] == landed.range.split("..")[0]
    assert "+merged" in diff["patch"]
