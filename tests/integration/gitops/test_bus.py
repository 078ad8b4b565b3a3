"""The gitops service over a real nats-server: request/reply contracts end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker

from services.gitops.app import create_app
from services.gitops.settings import GitOpsSettings
from shared import subjects
from shared.bus import make_broker, request
from shared.messages.gitops import (
    CommitMade,
    PushDone,
    WorktreeReady,
    WorktreeRemoved,
)
from shared.settings import GitSettings, HomeSettings, NatsSettings, host_id
from shared.subjects import GitOp
from tests.conftest import git
from tests.integration.gitops.conftest import align, commit_req, push_req, rm_req, wt_req


def on_host(operation: GitOp) -> str:
    """The subject of ``operation`` on this machine's host (the services' default)."""
    return subjects.gitops(host_id(), operation)


pytestmark = pytest.mark.integration


@pytest.fixture
async def client(nats_url: str, tmp_path: Path) -> AsyncIterator[NatsBroker]:
    """A running gitops app and a separate client broker (as the spawner would have)."""
    app = create_app(
        NatsSettings(nats_url=nats_url),
        HomeSettings(mosaic_home=tmp_path / "home"),
        GitSettings(git_author_name="Bus Agent", git_author_email="bus@test.invalid"),
        GitOpsSettings(network_timeout=20, local_timeout=20),
    )
    assert app.broker is not None
    async with app.broker:
        await app.broker.start()
        caller = make_broker(NatsSettings(nats_url=nats_url), "gitops-test-client")
        async with caller:
            await caller.start()
            yield caller


async def test_full_flow_over_the_bus(client: NatsBroker, remote_repo: Path) -> None:
    ready = await request(
        client,
        on_host(GitOp.WORKTREE_CREATE),
        wt_req(remote_repo, "bus1"),
        WorktreeReady,
        20,
    )
    assert ready.error is None
    assert ready.branch == "mosaic/agent-bus1"
    root = Path(ready.path or "")
    (root / "feature.py").write_text("VALUE = 42\n")
    made = await request(
        client,
        on_host(GitOp.COMMIT),
        commit_req(remote_repo, "bus1"),
        CommitMade,
        20,
    )
    assert made.error is None
    align(root, made.commit)
    assert git(root, "log", "-1", "--format=%an <%ae>") == "Bus Agent <bus@test.invalid>"
    assert git(root, "status", "--porcelain") == ""
    pushed = await request(
        client,
        on_host(GitOp.PUSH),
        push_req(remote_repo, "bus1"),
        PushDone,
        20,
    )
    assert pushed.error is None
    assert pushed.remote_branch == "mosaic/agent-bus1"
    assert pushed.commit == made.commit
    removed = await request(
        client,
        on_host(GitOp.WORKTREE_REMOVE),
        rm_req(remote_repo, "bus1"),
        WorktreeRemoved,
        20,
    )
    assert removed.removed
    assert removed.salvage_branch is None


async def test_errors_travel_as_failures(client: NatsBroker, remote_repo: Path) -> None:
    bad = await request(
        client,
        on_host(GitOp.WORKTREE_CREATE),
        wt_req("ext::sh", "bus2"),
        WorktreeReady,
        20,
    )
    assert bad.error is not None
    assert bad.error.code == "invalid_repository"
    assert bad.path is None

    ready = await request(
        client,
        on_host(GitOp.WORKTREE_CREATE),
        wt_req(remote_repo, "bus3"),
        WorktreeReady,
        20,
    )
    key = "sk-ant-" + "api03-" + "Zx9Qw7Lm2Np4Rt6Vy8Ab1Cd3Ef5Gh7Ij9Kl0Mn2Op4Qr6St8Uv"
    (Path(ready.path or "") / "leak.py").write_text(f'KEY = "{key}"\n')
    raw = await client.request(commit_req(remote_repo, "bus3").to_bytes(), on_host(GitOp.COMMIT),
                               timeout=20)  # fmt: skip
    assert key not in raw.body.decode()
    wire = json.loads(raw.body)
    assert wire["error"]["code"] == "secret_found"
    assert wire["error"]["paths"] == ["leak.py"]
    assert {"path": "leak.py", "line": 1, "rule": "anthropic-api-key"} in wire["findings"]
    assert "nothingToCommit" in wire  # camelCase on the wire


async def test_malformed_request_still_gets_an_answer(client: NatsBroker) -> None:
    raw = await client.request(b'{"agentId": 1}', on_host(GitOp.PUSH), timeout=20)
    reply = PushDone.from_bytes(raw.body)
    assert reply.error is not None
    assert reply.error.code == "invalid_request"
    assert "taskId" in reply.error.message or "task_id" in reply.error.message


async def test_health_probe(client: NatsBroker) -> None:
    raw = await client.request(b"", subjects.health("gitops"), timeout=5)
    assert json.loads(raw.body)["status"] == "ok"


@pytest.mark.unit
def test_conflict_reply_lists_paths() -> None:
    from services.gitops.errors import ConflictError
    from services.gitops.handlers import error_reply

    error = ConflictError("conflicts", paths=("app.py", "b.txt"), base_commit="a" * 40)
    reply = error_reply(PushDone, error)
    assert reply.conflicts == ("app.py", "b.txt")
    assert reply.base_commit == "a" * 40
    assert reply.error is not None
    assert reply.error.code == "conflict"
    assert reply.error.paths == ("app.py", "b.txt")
    assert reply.remote_branch is None


async def test_twenty_concurrent_creates_over_the_bus(
    client: NatsBroker, remote_repo: Path
) -> None:
    replies = await asyncio.gather(
        *(
            request(
                client,
                on_host(GitOp.WORKTREE_CREATE),
                wt_req(remote_repo, f"many{i}"),
                WorktreeReady,
                30,
            )
            for i in range(20)
        )
    )
    assert [r.error for r in replies] == [None] * 20
    assert len({r.path for r in replies}) == 20


async def test_a_stale_attempt_can_neither_integrate_nor_land(
    client: NatsBroker, remote_repo: Path
) -> None:
    """The merge queue's writes are fenced like the others: once attempt 2 of an agent
    was seen, attempt 1 can no longer integrate or land (the base stays where it was)."""
    from shared.messages.gitops import Integrated, IntegrateRequested, Landed, LandRequested

    where = {"agent_id": "fq", "task_id": "t1", "repository": str(remote_repo)}
    ready = await request(
        client,
        on_host(GitOp.WORKTREE_CREATE),
        wt_req(remote_repo, "fq"),
        WorktreeReady,
        20,
    )
    (Path(ready.path or "") / "fq.txt").write_text("fq\n")
    made = await request(
        client,
        on_host(GitOp.COMMIT),
        commit_req(remote_repo, "fq"),
        CommitMade,
        20,
    )
    assert made.commit
    done = await request(
        client,
        on_host(GitOp.INTEGRATE),
        IntegrateRequested(**where, attempt=2),
        Integrated,
        20,
    )
    assert done.error is None
    assert done.commit
    assert done.base_commit
    assert done.head
    before = git(remote_repo, "rev-parse", "main")

    stale = await request(
        client,
        on_host(GitOp.INTEGRATE),
        IntegrateRequested(**where, attempt=1),
        Integrated,
        20,
    )
    assert stale.error is not None
    assert stale.error.code == "stale_attempt"
    land = {"commit": done.commit, "onto": done.base_commit, "head": done.head}
    refused = await request(
        client,
        on_host(GitOp.LAND),
        LandRequested(**where, **land, attempt=1),
        Landed,
        20,
    )
    assert refused.error is not None
    assert refused.error.code == "stale_attempt"
    assert git(remote_repo, "rev-parse", "main") == before

    landed = await request(
        client,
        on_host(GitOp.LAND),
        LandRequested(**where, **land, attempt=2),
        Landed,
        20,
    )
    assert landed.error is None
    assert git(remote_repo, "rev-parse", "main") == done.commit
