"""Host-scoped gitops subjects over a real nats-server: two gitops services of two hosts,
each with its own workspace, answer only their own host's questions; the unscoped
repository-path question is answered by any host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream import FastStream
from faststream.nats import NatsBroker

from services.gitops.app import create_app
from services.gitops.settings import GitOpsSettings
from shared import subjects
from shared.bus import make_broker, request
from shared.errors import BusUnavailableError
from shared.messages.checks import RepositoryPathFound, RepositoryPathRequested
from shared.messages.gitops import WorktreeReady
from shared.settings import GitSettings, HomeSettings, HostSettings, NatsSettings
from shared.subjects import GitOp
from tests.integration.gitops.conftest import wt_req

pytestmark = pytest.mark.integration


def gitops_of(nats_url: str, home: Path, host: str) -> FastStream:
    return create_app(
        NatsSettings(nats_url=nats_url),
        HomeSettings(mosaic_home=home),
        GitSettings(),
        GitOpsSettings(network_timeout=20, local_timeout=20),
        HostSettings(mosaic_host_id=host),
    )


@pytest.fixture
async def two_hosts(nats_url: str, tmp_path: Path) -> AsyncIterator[NatsBroker]:
    """gitops of host ``ha`` (home ``ha``) and of host ``hb`` (home ``hb``), and a client."""
    apps = [gitops_of(nats_url, tmp_path / h, h) for h in ("ha", "hb")]
    brokers = [app.broker for app in apps if app.broker is not None]
    for broker in brokers:
        await broker.start()
    caller = make_broker(NatsSettings(nats_url=nats_url), "hosts-test-client")
    await caller.start()
    try:
        yield caller
    finally:
        await caller.stop()
        for broker in brokers:
            await broker.stop()


async def test_a_worktree_is_made_in_the_workspace_of_the_host_asked(
    two_hosts: NatsBroker, remote_repo: Path, tmp_path: Path
) -> None:
    for host, agent in (("ha", "alpha"), ("hb", "beta")):
        ready = await request(
            two_hosts,
            subjects.gitops(host, GitOp.WORKTREE_CREATE),
            wt_req(remote_repo, agent),
            WorktreeReady,
            30,
        )
        assert ready.error is None, ready.error
        assert ready.path is not None
        assert Path(ready.path).is_relative_to(tmp_path / host), (host, ready.path)
    assert any((tmp_path / "ha").rglob("*alpha*"))
    assert any((tmp_path / "hb").rglob("*beta*"))
    assert not any((tmp_path / "ha").rglob("*beta*")), "host ha holds hb's agent"
    assert not any((tmp_path / "hb").rglob("*alpha*")), "host hb holds ha's agent"


async def test_a_host_nobody_serves_gets_no_answer(
    two_hosts: NatsBroker, remote_repo: Path
) -> None:
    with pytest.raises(BusUnavailableError):
        await request(
            two_hosts,
            subjects.gitops("hc", GitOp.WORKTREE_CREATE),
            wt_req(remote_repo, "agent-c"),
            WorktreeReady,
            2,
        )


async def test_any_host_says_whether_a_local_repository_path_exists(
    two_hosts: NatsBroker, remote_repo: Path, tmp_path: Path
) -> None:
    there = await request(
        two_hosts,
        subjects.GITOPS_REPOSITORY_EXISTS,
        RepositoryPathRequested(path=str(remote_repo)),
        RepositoryPathFound,
        10,
    )
    assert there.exists, there
    assert there.host in ("ha", "hb"), there
    missing = await request(
        two_hosts,
        subjects.GITOPS_REPOSITORY_EXISTS,
        RepositoryPathRequested(path=str(tmp_path / "nowhere")),
        RepositoryPathFound,
        10,
    )
    assert not missing.exists, missing
    assert missing.error is None, missing
    relative = await request(
        two_hosts,
        subjects.GITOPS_REPOSITORY_EXISTS,
        RepositoryPathRequested(path="https://example.invalid/r.git"),
        RepositoryPathFound,
        10,
    )
    assert relative.error is not None
    assert relative.error.code == "invalid_repository"
