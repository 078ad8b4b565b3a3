"""gitops' handler contracts, in memory (FastStream's ``TestNatsBroker``): every request
gets a reply of its subject's type, a malformed one an ``invalid_request`` naming each
bad field, a refused one the refusal, and a good one the work done (on real git)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from services.gitops.app import create_app
from shared import subjects
from shared.messages.base import Message
from shared.messages.checks import RepositoryChecked
from shared.messages.diffs import DiffFound
from shared.messages.gitops import (
    BaseStatus,
    ChangesFound,
    CommitMade,
    Integrated,
    Landed,
    PushDone,
    WorktreeReady,
    WorktreeRemoved,
    WorktreeRemoveRequested,
    WorktreeRequested,
)
from shared.settings import HomeSettings, NatsSettings, host_id
from shared.subjects import GitOp


def on_host(operation: GitOp) -> str:
    """The subject of ``operation`` on this machine's host (the services' default)."""
    return subjects.gitops(host_id(), operation)


pytestmark = pytest.mark.unit

REPLIES: dict[str, type[Message]] = {
    on_host(GitOp.WORKTREE_CREATE): WorktreeReady,
    on_host(GitOp.WORKTREE_REMOVE): WorktreeRemoved,
    on_host(GitOp.COMMIT): CommitMade,
    on_host(GitOp.PUSH): PushDone,
    on_host(GitOp.CHANGES): ChangesFound,
    on_host(GitOp.BASE_STATUS): BaseStatus,
    on_host(GitOp.INTEGRATE): Integrated,
    on_host(GitOp.LAND): Landed,
    on_host(GitOp.DIFF): DiffFound,
    subjects.GITOPS_CHECK: RepositoryChecked,
}
REQUIRED: dict[str, str] = {
    subject: "taskId" for subject in REPLIES if subject != subjects.GITOPS_CHECK
} | {subjects.GITOPS_CHECK: "repository"}


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[NatsBroker]:
    app = create_app(
        NatsSettings(nats_url="nats://127.0.0.1:1"),  # never dialled: the broker is patched
        HomeSettings(mosaic_home=tmp_path / "home"),
    )
    assert isinstance(app.broker, NatsBroker)
    async with TestNatsBroker(app.broker) as patched:
        yield patched


async def ask(broker: NatsBroker, subject: str, body: bytes) -> Message:
    reply = await broker.request(body, subject, timeout=30)
    return REPLIES[subject].model_validate_json(reply.body)


@pytest.mark.parametrize("subject", list(REPLIES))
async def test_a_malformed_request_is_answered_naming_its_fields(
    broker: NatsBroker, subject: str
) -> None:
    reply = await ask(broker, subject, b'{"agentId": 7, "password": "hunter2"}')
    error = reply.error  # type: ignore[attr-defined]
    assert error is not None
    assert error.code == "invalid_request"
    assert "agentId" in error.message
    assert f"{REQUIRED[subject]}: Field required" in error.message
    assert "hunter2" not in error.message  # values are never echoed


@pytest.mark.parametrize("subject", list(REPLIES))
async def test_a_body_that_is_not_json_is_answered(broker: NatsBroker, subject: str) -> None:
    reply = await ask(broker, subject, b"\x00 not json")
    assert reply.error is not None  # type: ignore[attr-defined]
    assert reply.error.code == "invalid_request"  # type: ignore[attr-defined]


async def test_an_id_that_cannot_name_a_branch_is_refused(
    broker: NatsBroker, remote_repo: Path
) -> None:
    asked = WorktreeRequested(agent_id="../escape", task_id="t1", repository=str(remote_repo))
    reply = await ask(broker, on_host(GitOp.WORKTREE_CREATE), asked.to_bytes())
    assert isinstance(reply, WorktreeReady)
    assert reply.error is not None
    assert reply.error.code == "invalid_request"
    assert reply.path is None


async def test_a_worktree_is_made_then_removed(
    broker: NatsBroker, remote_repo: Path, tmp_path: Path
) -> None:
    asked = WorktreeRequested(
        agent_id="a1b2c3", task_id="t1", repository=str(remote_repo), attempt=1
    )
    made = await ask(broker, on_host(GitOp.WORKTREE_CREATE), asked.to_bytes())
    assert isinstance(made, WorktreeReady)
    assert made.error is None, made.error
    assert made.path is not None
    assert (Path(made.path) / "app.py").is_file()
    assert made.branch == "mosaic/agent-a1b2c3"
    assert Path(made.path).is_relative_to(tmp_path / "home")

    again = await ask(broker, on_host(GitOp.WORKTREE_CREATE), asked.to_bytes())  # a resend
    assert isinstance(again, WorktreeReady)
    assert (again.error, again.reused) == (None, True)

    remove = WorktreeRemoveRequested(
        agent_id="a1b2c3", task_id="t1", repository=str(remote_repo), attempt=2
    )
    removed = await ask(broker, on_host(GitOp.WORKTREE_REMOVE), remove.to_bytes())
    assert isinstance(removed, WorktreeRemoved)
    assert (removed.error, removed.removed) == (None, True)
    assert not Path(made.path).exists()

    late = await ask(broker, on_host(GitOp.WORKTREE_CREATE), asked.to_bytes())
    assert isinstance(late, WorktreeReady)
    assert late.error is not None
    assert late.error.code == "stale_attempt"  # attempt 1 after attempt 2 was seen


async def test_an_unknown_repository_is_answered_with_its_reason(
    broker: NatsBroker, tmp_path: Path
) -> None:
    asked = WorktreeRequested(agent_id="a1", task_id="t1", repository=str(tmp_path / "nowhere.git"))
    reply = await ask(broker, on_host(GitOp.WORKTREE_CREATE), asked.to_bytes())
    assert isinstance(reply, WorktreeReady)
    assert reply.error is not None
    assert reply.error.code in {"repo_not_found", "invalid_repository"}
    assert reply.path is None
