"""The whole system on the docker sandbox with a repository that declares an environment:
three agents of it at once, one build, its progress in their events, the image there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from mosaic.supervisor import Supervisor
from shared.environments.build import image_attrs
from shared.environments.key import LABEL_SOURCE
from tests.conftest import STDLIB_GATES, TEST_APP, git
from tests.docker.envimages import remove_environment_images
from tests.integration.environments.repos import Repo
from tests.integration.killswitch.helpers import admin, events, spawn, system, wait_state

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory, sandbox_image: str) -> Iterator[Supervisor]:
    home = tmp_path_factory.mktemp("environments-docker") / "home"
    env = {
        "MOSAIC_SANDBOX": "docker",
        "MOSAIC_SANDBOX_IMAGE": sandbox_image,
    }
    with system(home, **env) as supervisor:
        yield supervisor


def environment_events(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e["detail"]
        for e in history
        if e["kind"] == "progress" and e["detail"].get("step") == "environment"
    ]


def test_three_agents_one_build_through_the_system(
    sup: Supervisor, docker_client: docker.DockerClient, tmp_path: Path, unique: str
) -> None:
    repo = Repo(tmp_path, f"envsys-{unique}")
    repo.commit(
        {
            ".mosaic/environment.toml": (
                'setup = ["sleep 2", "echo environment-ready > /etc/env-marker"]\n'
                'env = { PROJECT_MODE = "test" }\n'
            ),
            "app.py": "def add(a, b):\n    return a + b\n",
            "test_app.py": TEST_APP,
            ".mosaic/gates.toml": STDLIB_GATES,
        }
    )
    seen = "cat /etc/env-marker > seen.txt; echo $PROJECT_MODE >> seen.txt"
    plan = [
        {"tool": "run_command", "input": {"command": seen}},
        {"tool": "finish", "input": {"summary": "looked at the environment"}},
    ]
    try:
        with admin(sup) as http:
            agents = [spawn(http, repo.bare, f"envsys-{unique}-{n}", plan) for n in range(3)]
            records = wait_state(http, agents, {"completed", "failed", "killed"}, timeout=240)
            histories = [events(http, a) for a in agents]
        assert {r["state"] for r in records.values()} == {"completed"}, records
        phases = [[str(d["phase"]) for d in environment_events(h)] for h in histories]
        assert sum(p.count("built") for p in phases) == 1, phases
        images = {d["image"] for h in histories for d in environment_events(h)}
        assert len(images) == 1
        image = images.pop()
        labels = image_attrs(docker_client.api, image)["Config"]["Labels"]
        assert labels[LABEL_SOURCE] == ".mosaic/environment.toml"
        # the agent's commands ran in the built image, with the declared environment
        for record in records.values():
            assert git(repo.bare, "show", f"{record['pushedBranch']}:seen.txt").split() == [
                "environment-ready",
                "test",
            ]
    finally:
        remove_environment_images(docker_client, f"envsys-{unique}")


def test_a_broken_setup_fails_the_task_once_with_its_output(
    sup: Supervisor, docker_client: docker.DockerClient, tmp_path: Path, unique: str
) -> None:
    repo = Repo(tmp_path, f"envbroken-{unique}")
    repo.commit({".mosaic/environment.toml": 'setup = ["echo setup-went-wrong-7 >&2; exit 3"]\n'})
    plan = [{"tool": "finish", "input": {"summary": "never reached"}}]
    with admin(sup) as http:
        agent_id = spawn(http, repo.bare, f"envbroken-{unique}", plan)
        record = wait_state(http, [agent_id], {"completed", "failed", "killed"}, timeout=120)[
            agent_id
        ]
        history = events(http, agent_id)
    assert record["state"] == "failed"
    assert "setup-went-wrong-7" in record["error"]
    assert record["attempts"] == 1
    assert "running" not in [e["state"] for e in history]
    phases = [str(d["phase"]) for d in environment_events(history)]
    assert phases[0] == "building"
