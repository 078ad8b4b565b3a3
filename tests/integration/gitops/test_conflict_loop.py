"""Issue 17, the conflict loop in the bwrap tier (see ``conflict_loop.py``): rebase and
merge, through the spawner with the anthropic provider against the fake Messages API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.conftest import git
from tests.fakes.messages_api import FakeMessagesAPI
from tests.integration.gitops.conflict_loop import MERGE, REBASE, resolve_conflict
from tests.integration.sandbox.conftest import require_bwrap
from tests.systems import operator_http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

KEY = "sk-ant-test-conflict-loop"


@pytest.fixture(scope="module")
def model() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(api_key=KEY) as api:
        yield api


@pytest.fixture(scope="module")
async def bwrap_runs() -> None:
    await require_bwrap()


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, model: FakeMessagesAPI, bwrap_runs: None
) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("home"),
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "anthropic",
            "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_BASE_URL": model.url,
            "MOSAIC_SANDBOX": "bwrap",
            "TASK_ACK_WAIT_S": "10",
        },
    )
    with Supervisor(config) as supervisor:
        yield supervisor


@pytest.fixture
def http(system: Supervisor) -> Iterator[httpx.Client]:
    with operator_http(system) as client:
        yield client


def test_the_agent_rebases_onto_the_moved_base_and_pushes_both_changes(
    http: httpx.Client, model: FakeMessagesAPI, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    def linear(branch: str, upstream: str) -> None:
        assert git(remote_repo, "rev-list", "--merges", f"main..{branch}") == ""

    resolve_conflict(http, model, remote_repo, tmp_path, f"rebase-{unique}", REBASE, linear)


def test_the_agent_merges_the_moved_base_and_pushes_both_changes(
    http: httpx.Client, model: FakeMessagesAPI, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    def merged(branch: str, upstream: str) -> None:
        assert git(remote_repo, "rev-list", "--merges", f"main..{branch}") != ""

    resolve_conflict(http, model, remote_repo, tmp_path, f"merge-{unique}", MERGE, merged)
