"""The ten-agent merge queue (``test_merge_queue.py``) with every agent and every gate in
a bwrap sandbox: the conflicting agent runs git (rebase, show, add, rebase --continue)
inside its sandbox on its own repository. Skipped, naming why, where bwrap cannot run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.integration.sandbox.conftest import require_bwrap
from tests.integration.test_merge_queue import ten_agents_through_the_queue
from tests.systems import operator_http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
async def bwrap_runs() -> None:
    await require_bwrap()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, bwrap_runs: None) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("mq-bwrap-home"),
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "scripted",
            "MOSAIC_SANDBOX": "bwrap",
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


def test_ten_agents_in_bwrap_merge_in_queue_order(
    http: httpx.Client, system: Supervisor, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    records = ten_agents_through_the_queue(http, system, remote_repo, tmp_path, unique)
    assert {r["sandbox"] for r in records} == {"bwrap"}
    assert not any(r["unsafe"] for r in records)
