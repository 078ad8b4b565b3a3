"""``POST /agents/check``'s image check with the whole system on the docker sandbox: a
docker spawner says whether a declared environment is buildable, cached (after a task
built it), remembered as failed, or has a base image neither here nor in a registry; and
it pulls, builds and writes nothing while saying so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from mosaic.supervisor import Supervisor
from shared.environments.build import image_attrs
from tests.conftest import STDLIB_GATES, TEST_APP
from tests.docker.envimages import environment_images, remove_environment_images
from tests.integration.environments.repos import Repo
from tests.integration.killswitch.helpers import admin, spawn, system, wait_state
from tests.systems import FINAL

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

TOML = ".mosaic/environment.toml"
NOOP = [{"tool": "finish", "input": {"summary": "nothing to do"}}]


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory, sandbox_image: str) -> Iterator[Supervisor]:
    home = tmp_path_factory.mktemp("precheck-docker") / "home"
    with system(home, MOSAIC_SANDBOX="docker", MOSAIC_SANDBOX_IMAGE=sandbox_image) as s:
        yield s


def body(repo: Path, task_id: str) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "workItems": ["x"]},
        "options": {"plan": NOOP, "maxRetries": 0},
        "gateProfile": "minimal",
    }


def image_check(http: httpx.Client, repo: Path, task_id: str) -> tuple[bool, str]:
    answer = http.post("/agents/check", json=body(repo, task_id))
    assert answer.status_code == 200, answer.text
    (found,) = [c for c in answer.json()["checks"] if c["name"] == "image"]
    return found["ok"], found["detail"]


def test_a_declared_environment_is_buildable_then_cached_after_a_task_built_it(
    sup: Supervisor, docker_client: docker.DockerClient, tmp_path: Path, unique: str
) -> None:
    mine = f"precheck-{unique}"
    repo = Repo(tmp_path, mine)
    repo.commit(
        {
            TOML: f'setup = ["echo {unique} > /etc/marker"]\n',
            "app.py": "def add(a, b):\n    return a + b\n",
            "test_app.py": TEST_APP,
            ".mosaic/gates.toml": STDLIB_GATES,
        }
    )
    try:
        with admin(sup) as http:
            ok, detail = image_check(http, repo.bare, f"pc-{unique}-0")
            assert ok, detail
            assert detail.startswith("buildable: mosaic-env/")
            assert environment_images(docker_client, mine) == set()  # the check built nothing
            agent = spawn(http, repo.bare, f"pc-{unique}-1", NOOP)
            record = wait_state(http, [agent], FINAL, timeout=180)[agent]
            assert record["state"] == "completed", record.get("error")
            ok, detail = image_check(http, repo.bare, f"pc-{unique}-2")
        assert ok, detail
        assert detail.startswith("cached: mosaic-env/")
        tag = detail.removeprefix("cached: ").split(" ")[0]
        assert environment_images(docker_client, mine) == {tag}
    finally:
        remove_environment_images(docker_client, mine)


def test_a_failed_build_and_a_missing_base_image_fail_the_image_check(
    sup: Supervisor, docker_client: docker.DockerClient, tmp_path: Path, unique: str
) -> None:
    broken = Repo(tmp_path, f"precheck-broken-{unique}")
    broken.commit({TOML: 'setup = ["echo precheck-went-wrong >&2; exit 3"]\n'})
    absent = Repo(tmp_path, f"precheck-absent-{unique}")
    absent.commit({TOML: 'image = "mosaic-precheck/absent:never"\n'})
    with admin(sup) as http:
        agent = spawn(http, broken.bare, f"pb-{unique}-1", NOOP)
        assert wait_state(http, [agent], FINAL, timeout=120)[agent]["state"] == "failed"
        ok, detail = image_check(http, broken.bare, f"pb-{unique}-2")
        assert not ok
        assert "environment build failed" in detail
        assert "precheck-went-wrong" in detail
        ok, detail = image_check(http, absent.bare, f"pa-{unique}")
    assert not ok
    assert "image mosaic-precheck/absent:never is not on this Docker host" in detail
    with pytest.raises(docker.errors.ImageNotFound):  # asked about, never pulled
        image_attrs(docker_client.api, "mosaic-precheck/absent:never")
