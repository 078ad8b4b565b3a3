"""Real work in a real repository, as a new user would do it (issue 16's acceptance).

A Python project whose tests need pytest and a library declares its environment in
``.mosaic/environment.toml``; the whole system runs (five processes, real NATS and
Valkey, the docker sandbox), the agent is the real Anthropic SDK talking to the test
Messages API server. The agent runs the failing test in its sandbox, fixes the code,
runs it again and finishes; the ``standard`` gates (tests and lint) run in the same
environment image, and the branch is pushed. A failing fix is rejected by the tests
gate, and the failing test's name comes back to the agent as a tool result.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.conftest import git
from tests.fakes.messages_api import FakeMessagesAPI, reply, text, tool_use
from tests.systems import operator_http, wait_final

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


PACKAGES = "python3-pytest python3-yaml python3-pyflakes"
"""pytest, the library the code needs, and the linter, from Debian's packages."""
ENVIRONMENT = f"""\
setup = [
  "apt-get update -qq",
  "apt-get install -y -qq --no-install-recommends {PACKAGES}",
]
inputs = ["requirements.txt"]
env = {{ PYTHONDONTWRITEBYTECODE = "1" }}
"""
GATES = """\
[gates]
tests = "python3 -m pytest -q -p no:cacheprovider"
lint = "python3 -m pyflakes calc.py test_calc.py"
"""
CALC = """\
import yaml


def parse_total(document: str) -> int:
    data = yaml.safe_load(document)
    return sum(data["items"]) - 1
"""
FIXED = CALC.replace(" - 1\n", "\n")
TEST = """\
from calc import parse_total


def test_total_of_items():
    assert parse_total("items: [1, 2, 3]") == 6
"""


def make_project(root: Path) -> Path:
    """A bare remote holding a small project with one failing test."""
    remote = root / "calc.git"
    seed = root / "seed"
    seed.mkdir()
    (seed / ".mosaic").mkdir()
    (seed / ".mosaic" / "environment.toml").write_text(ENVIRONMENT)
    (seed / ".mosaic" / "gates.toml").write_text(GATES)
    (seed / "requirements.txt").write_text("pyyaml\npytest\n")
    (seed / "calc.py").write_text(CALC)
    (seed / "test_calc.py").write_text(TEST)
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "calc with a bug")
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(remote)], check=True)
    return remote


@pytest.fixture(scope="module", autouse=True)
def built_images_removed(docker_client: docker.DockerClient) -> Iterator[None]:
    """The environment images these tests build are theirs to remove (hundreds of MB each)."""
    before = {image.id for image in docker_client.images.list("mosaic-env/calc-*")}
    yield
    for image in docker_client.images.list("mosaic-env/calc-*"):
        if image.id is not None and image.id not in before:
            with contextlib.suppress(docker.errors.APIError):
                docker_client.images.remove(image.id, force=True)


@pytest.fixture(scope="module")
def model() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(api_key="sk-ant-test-real-repo") as api:
        yield api


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, model: FakeMessagesAPI, sandbox_image: str
) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("home"),
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "anthropic",
            "ANTHROPIC_API_KEY": "sk-ant-test-real-repo",
            "ANTHROPIC_BASE_URL": model.url,
            "MOSAIC_SANDBOX": "docker",
            "MOSAIC_SANDBOX_IMAGE": sandbox_image,
            "TASK_ACK_WAIT_S": "10",
        },
    )
    with Supervisor(config) as supervisor:
        yield supervisor


@pytest.fixture(scope="module")
def http(system: Supervisor) -> Iterator[httpx.Client]:
    with operator_http(system) as client:
        yield client


def spawn(http: httpx.Client, remote: Path, task_id: str) -> str:
    answer = http.post(
        "/agents/spawn",
        json={
            "taskId": task_id,
            "agentType": "worker",
            "gateProfile": "standard",
            "context": {
                "repository": str(remote),
                "branch": "main",
                "workItems": ["parse_total is off by one; make test_calc pass"],
            },
            "options": {"maxRetries": 0, "timeout": 600},
        },
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"])


RUN_TESTS = {"command": "python3 -m pytest -q -p no:cacheprovider", "timeout": 120}


def test_agent_fixes_a_failing_test_in_its_declared_environment(
    http: httpx.Client, model: FakeMessagesAPI, tmp_path: Path, unique: str
) -> None:
    remote = make_project(tmp_path)
    model.reset()
    model.enqueue(
        reply(text("Run the tests first."), tool_use("run_command", RUN_TESTS)),
        reply(
            tool_use(
                "edit_file",
                {"path": "calc.py", "old": 'sum(data["items"]) - 1', "new": 'sum(data["items"])'},
            )
        ),
        reply(tool_use("run_command", RUN_TESTS)),
        reply(tool_use("finish", {"summary": "parse_total no longer subtracts one"})),
    )
    agent_id = spawn(http, remote, f"real-{unique}")
    record = wait_final(http, agent_id, timeout=600)
    outputs = model.tool_outputs()
    assert record["state"] == "completed", (record["error"], record, outputs)
    # the agent's own commands ran in the declared environment: pytest and yaml are there
    assert "1 failed" in outputs[0], outputs[0]
    assert "1 passed" in outputs[2], outputs[2]
    # what ran is visible
    assert record["provider"] == "anthropic"
    assert record["sandbox"] == "docker"
    assert "mosaic-env/" in (record["environment"] or ""), record
    gates = {g["name"]: g for g in record["gates"]}
    assert gates["tests"]["status"] == "passed", gates
    assert gates["lint"]["status"] == "passed", gates
    branch = record["pushedBranch"]
    assert git(remote, "show", f"{branch}:calc.py") == FIXED.strip()


def test_a_failing_fix_is_rejected_and_the_agent_hears_which_test(
    http: httpx.Client, model: FakeMessagesAPI, tmp_path: Path, unique: str
) -> None:
    remote = make_project(tmp_path)
    model.reset()
    wrong = {"path": "calc.py", "old": 'sum(data["items"]) - 1', "new": 'sum(data["items"]) + 1'}
    model.enqueue(
        reply(tool_use("edit_file", wrong)),
        reply(tool_use("finish", {"summary": "fixed, I think"})),
        reply(tool_use("finish", {"summary": "still fixed, I think"})),
        reply(tool_use("finish", {"summary": "really"})),
        reply(tool_use("finish", {"summary": "really really"})),
    )
    agent_id = spawn(http, remote, f"wrong-{unique}")
    record = wait_final(http, agent_id, timeout=600)
    assert record["state"] == "failed", record
    rejections = [o for o in model.tool_outputs() if "test_total_of_items" in o]
    assert rejections, model.tool_outputs()
    assert not git(remote, "branch", "--list", f"mosaic/agent-{agent_id}")
