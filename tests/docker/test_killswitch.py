"""The killswitch against real sandbox containers: whole system as processes, docker sandbox.

Kill one running agent (its container SIGKILLed and removed, worktree gone, audited);
kill with the owning spawner hung (the killswitch removes the container by label); and
the reaper removing a container left behind by an agent that is over.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from mosaic.supervisor import Supervisor
from tests.integration.killswitch.helpers import (
    admin,
    events,
    final_states,
    noop,
    sleeper,
    spawn,
    status,
    system,
    wait_state,
    worktrees,
)

from .conftest import labelled

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

DEPLOYMENT = f"killswitch-docker-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory, sandbox_image: str) -> Iterator[Supervisor]:
    home = tmp_path_factory.mktemp("killswitch-docker") / "home"
    env = {
        "MOSAIC_SANDBOX": "docker",
        "MOSAIC_SANDBOX_IMAGE": sandbox_image,
        "REAP_INTERVAL_S": "1",
        "REAP_MIN_AGE_S": "0",
        "MOSAIC_DEPLOYMENT_ID": DEPLOYMENT,
    }
    with system(home, **env) as supervisor:
        yield supervisor


def wait_gone(client: docker.DockerClient, agent_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while labelled(client, agent_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert labelled(client, agent_id) == []


def running_in_container(
    sup: Supervisor, client: docker.DockerClient, repo: Path, task_id: str
) -> str:
    with admin(sup) as http:
        agent_id = spawn(http, repo, task_id, sleeper(120))
        wait_state(http, [agent_id], {"running"}, timeout=90)
        record = status(http, agent_id)
    assert record["sandbox"] == "docker"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the sleep is under way in the container
        ids = labelled(client, agent_id)
        if ids and "sleep 120" in str(client.api.top(ids[0])["Processes"]):
            return agent_id
        time.sleep(0.1)
    raise AssertionError("the agent's command never started in its container")


def test_kill_one_running_docker_agent(
    sup: Supervisor, docker_client: docker.DockerClient, remote_repo: Path, unique: str
) -> None:
    agent_id = running_in_container(sup, docker_client, remote_repo, f"dk-{unique}")
    with admin(sup) as http:
        started = time.perf_counter()
        answer = http.post(f"/agents/{agent_id}/kill")
        elapsed = time.perf_counter() - started
        gone_at = None
        if not labelled(docker_client, agent_id):
            gone_at = elapsed
        wait_gone(docker_client, agent_id, timeout=5)
        total = gone_at if gone_at is not None else time.perf_counter() - started
        print(
            f"\ndocker kill: answered killed in {elapsed * 1000:.0f} ms, "
            f"container gone within {total * 1000:.0f} ms"
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "killed"
        assert elapsed < 2.0
        assert total < 2.0
        record = status(http, agent_id)
        assert record["state"] == "killed"
        deadline = time.monotonic() + 20
        while (worktrees(sup, agent_id) or status(http, agent_id)["worktree"]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert worktrees(sup, agent_id) == []
        history = events(http, agent_id)
        assert final_states(history) == ["killed"]
        cleanup = [e for e in history if e["kind"] == "cleanup"]
        assert cleanup
        # the spawner's and the killswitch's cleanups may both be recorded, in either order
        assert any(e["detail"].get("sandbox") == "removed" for e in cleanup), cleanup
        deadline = time.monotonic() + 5
        entries: list[dict[str, object]] = []
        while not entries and time.monotonic() < deadline:
            entries = http.get("/audit", params={"agentId": agent_id, "kind": "kill"}).json()
            time.sleep(0.1)
        assert entries
        assert entries[0]["actor"] == "http:admin"


def test_kill_with_the_spawner_hung_removes_the_container(
    sup: Supervisor, docker_client: docker.DockerClient, remote_repo: Path, unique: str
) -> None:
    agent_id = running_in_container(sup, docker_client, remote_repo, f"dkhung-{unique}")
    sup.stop_service("spawner", signal.SIGSTOP)
    try:
        with admin(sup) as http:
            started = time.perf_counter()
            answer = http.post(f"/agents/{agent_id}/kill")
            elapsed = time.perf_counter() - started
            print(f"\ndocker kill with a hung spawner: {elapsed * 1000:.0f} ms")
            assert answer.json()["state"] == "killed"
            assert elapsed < 5.0
            assert labelled(docker_client, agent_id) == []
            killed = [e for e in events(http, agent_id) if e.get("state") == "killed"]
            assert killed[0]["detail"]["by"] == "killswitch"
            assert killed[0]["detail"]["containers"] == 1
    finally:
        sup.stop_service("spawner", signal.SIGCONT)
    with admin(sup) as http:
        time.sleep(2.0)
        assert final_states(events(http, agent_id)) == ["killed"]


def test_reaper_removes_containers_of_final_agents(
    sup: Supervisor,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    remote_repo: Path,
    unique: str,
) -> None:
    with admin(sup) as http:
        agent_id = spawn(http, remote_repo, f"dkreap-{unique}", noop())
        wait_state(http, [agent_id], {"completed"}, timeout=90)
    leftover = docker_client.containers.run(
        sandbox_image,
        ["sleep", "infinity"],
        detach=True,
        labels={
            "mosaic.agent_id": agent_id,
            "mosaic.task_id": f"dkreap-{unique}",
            "mosaic.deployment": DEPLOYMENT,
        },
        network_mode="none",
    )
    # the same leftover of another Mosaic system on this daemon: not this reaper's business
    foreign = docker_client.containers.run(
        sandbox_image,
        ["sleep", "infinity"],
        detach=True,
        labels={
            "mosaic.agent_id": f"foreign-{unique}",
            "mosaic.task_id": f"dkreap-{unique}",
            "mosaic.deployment": f"another-system-{unique}",
        },
        network_mode="none",
    )
    try:
        wait_gone(docker_client, agent_id, timeout=10)
        time.sleep(2)  # two more reaper passes (REAP_INTERVAL_S=1)
        assert labelled(docker_client, f"foreign-{unique}") == [foreign.id]
    finally:
        foreign.remove(force=True)
        if labelled(docker_client, agent_id):
            leftover.remove(force=True)
