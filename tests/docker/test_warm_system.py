"""Warm docker sandboxes through the whole system (``MOSAIC_SANDBOX_WARM=2``).

A repository's first agent teaches the spawner's pool; two warm containers wait; the
next agent runs in one of them (its status says so), writes, passes its gates and
pushes; an agent in a warm container is killed by the killswitch with its spawner
hung (found by its name, as its labels name no agent); kill-all removes every warm
container, and nothing refills them while the hold lasts.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from mosaic.supervisor import Supervisor
from shared.sandbox.containers import LABEL_WARM, agent_containers
from tests.conftest import git
from tests.integration.killswitch.helpers import (
    admin,
    events,
    noop,
    sleeper,
    spawn,
    status,
    system,
    wait_state,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

DEPLOYMENT = f"warm-docker-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory, sandbox_image: str) -> Iterator[Supervisor]:
    home = tmp_path_factory.mktemp("warm-docker") / "home"
    env = {
        "MOSAIC_SANDBOX": "docker",
        "MOSAIC_SANDBOX_IMAGE": sandbox_image,
        "MOSAIC_SANDBOX_WARM": "2",
        "MOSAIC_DEPLOYMENT_ID": DEPLOYMENT,
    }
    with system(home, **env) as supervisor:
        yield supervisor


def idle_warm(client: docker.DockerClient) -> list[dict[str, Any]]:
    """Warm containers of this system no agent has claimed."""
    found: list[dict[str, Any]] = client.api.containers(
        all=True, filters={"label": [LABEL_WARM, f"mosaic.deployment={DEPLOYMENT}"]}
    )
    return [c for c in found if not any(n.startswith("/mosaic-warm.") for n in c["Names"])]


def wait_warm(
    client: docker.DockerClient, count: int, timeout: float = 60, *, at_least: bool = False
) -> None:
    """Until ``count`` warm containers wait (pools are per repository: each test's
    repository adds its own, so a later test may ask for ``at_least``)."""
    deadline = time.monotonic() + timeout
    while not (len(idle_warm(client)) >= count if at_least else len(idle_warm(client)) == count):
        assert time.monotonic() < deadline, f"{len(idle_warm(client))} warm, not {count}"
        time.sleep(0.1)


def warm_flags(history: list[dict[str, Any]]) -> list[bool]:
    return [
        e["detail"]["warm"]
        for e in history
        if e["kind"] == "progress" and e["detail"].get("step") == "sandbox"
    ]


def test_the_second_agent_runs_warm_pushes_and_is_killed_without_its_spawner(
    sup: Supervisor, docker_client: docker.DockerClient, remote_repo: Path, unique: str
) -> None:
    with admin(sup) as http:
        first = spawn(http, remote_repo, f"first-{unique}", noop())
        wait_state(http, [first], {"completed"}, timeout=120)
        assert warm_flags(events(http, first)) == [False]  # nothing known to warm yet
        wait_warm(docker_client, 2)

        plan = [
            {"tool": "write_file", "input": {"path": "warm.txt", "content": "from warm\n"}},
            {"tool": "run_command", "input": {"command": "test -w warm.txt && cat warm.txt"}},
            {"tool": "finish", "input": {"summary": "wrote warm.txt"}},
        ]
        writer = spawn(http, remote_repo, f"writer-{unique}", plan)
        wait_state(http, [writer], {"completed"}, timeout=120)
        record = status(http, writer)
        assert record["sandbox"] == "docker"
        assert warm_flags(events(http, writer)) == [True]
        assert git(remote_repo, "show", f"{record['pushedCommit']}:warm.txt") == "from warm"
        assert agent_containers(docker_client, writer, DEPLOYMENT) == []  # removed at its end

        wait_warm(docker_client, 2)
        sleeping = spawn(http, remote_repo, f"sleeper-{unique}", sleeper(120))
        wait_state(http, [sleeping], {"running"}, timeout=60)
        assert warm_flags(events(http, sleeping)) == [True]
        assert len(agent_containers(docker_client, sleeping, DEPLOYMENT)) == 1
        sup.stop_service("spawner", signal.SIGSTOP)
        try:
            answer = http.post(f"/agents/{sleeping}/kill")
            assert answer.json()["state"] == "killed"
            assert agent_containers(docker_client, sleeping, DEPLOYMENT) == []
            killed = [e for e in events(http, sleeping) if e.get("state") == "killed"]
            assert killed[0]["detail"]["by"] == "killswitch"
            assert killed[0]["detail"]["containers"] == 1
        finally:
            sup.stop_service("spawner", signal.SIGCONT)


def test_kill_all_removes_the_warm_containers(
    sup: Supervisor, docker_client: docker.DockerClient, remote_repo: Path, unique: str
) -> None:
    with admin(sup) as http:
        first = spawn(http, remote_repo, f"learn-{unique}", noop())
        wait_state(http, [first], {"completed"}, timeout=120)
        wait_warm(docker_client, 2, at_least=True)
        assert http.post("/agents/kill-all").status_code == 200
        wait_warm(docker_client, 0, timeout=10)
        time.sleep(1)
        assert idle_warm(docker_client) == []  # nothing refilled during the hold
        assert http.post("/agents/resume").json()["held"] is False
