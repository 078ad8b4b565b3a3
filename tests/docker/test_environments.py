"""Environments built for real: Docker builds from real repositories, Debian's and npm's
package indexes reached through the host's CA bundle, a real Valkey for the build lock.

Each built image is checked by running a container from it with the project's worktree
mounted at /workspace, without network and as its (non-root) user, the way the sandbox
will run it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import ImageNotFound
from redis.asyncio import Redis

from shared.environments import (
    BuildFailedError,
    BuildTimeoutError,
    Environments,
    EnvironmentSettings,
    PreparedEnvironment,
)
from shared.environments.build import image_attrs
from shared.environments.key import LABEL_KEY, LABEL_SOURCE, repository_slug
from tests.docker.envimages import remove_environment_images
from tests.integration.environments.repos import Repo

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

TOML = ".mosaic/environment.toml"
APT = "apt-get install -y --no-install-recommends"


@pytest.fixture
def repo(tmp_path: Path, unique: str, docker_client: docker.DockerClient) -> Iterator[Repo]:
    """A repository whose environment images are removed after the test."""
    made = Repo(tmp_path, f"envtest-{unique}")
    yield made
    remove_environment_images(docker_client, f"envtest-{unique}")


def envs(
    client: docker.DockerClient, redis: Redis, unique: str, image: str, **settings: Any
) -> Environments:
    return Environments(
        redis=redis,
        prefix=f"t{unique}",
        docker_client=client,
        sandbox_kind="docker",
        default_image=image,
        settings=EnvironmentSettings(**settings),
    )


class Events:
    """Collects the progress events of one or more prepare calls."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        self.seen.append(event)

    def phases(self) -> list[str]:
        return [str(e["phase"]) for e in self.seen]

    def output(self) -> str:
        return "\n".join(line for e in self.seen for line in e.get("lines", ()))


def run_in(
    client: docker.DockerClient, image: str, worktree: Path, command: str
) -> tuple[int, str]:
    """Run ``command`` in a container of ``image`` with ``worktree`` at /workspace."""
    container = client.containers.create(
        image,
        ["sh", "-c", command],
        network_mode="none",
        volumes={str(worktree): {"bind": "/workspace", "mode": "rw"}},
        working_dir="/workspace",
        environment={"HOME": "/tmp"},  # the container's own /tmp
    )
    try:
        container.start()
        status = container.wait(timeout=120)
        return int(status["StatusCode"]), container.logs().decode()
    finally:
        container.remove(force=True)


CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


async def test_a_python_project_gets_pytest_from_debian(
    docker_client: docker.DockerClient, sandbox_image: str, redis: Redis, unique: str, repo: Repo
) -> None:
    base = repo.commit(
        {
            TOML: (
                f'setup = ["apt-get update", "{APT} python3-pytest"]\n'
                'inputs = ["pyproject.toml"]\n'
                'env = { PYTEST_ADDOPTS = "-p no:cacheprovider" }\n'
            ),
            "pyproject.toml": '[project]\nname = "calc"\nversion = "0"\n',
            "calc.py": CALC,
            "test_calc.py": TEST_CALC,
        }
    )
    events = Events()
    env = await envs(docker_client, redis, unique, sandbox_image).prepare(
        repo.bare, base, progress=events
    )
    assert env.built
    assert env.image is not None
    assert env.image.startswith(f"mosaic-env/{repository_slug(repo.bare.name)}:")
    assert env.env == {"PYTEST_ADDOPTS": "-p no:cacheprovider"}
    labels = image_attrs(docker_client.api, env.image)["Config"]["Labels"]
    assert labels[LABEL_KEY] == env.key
    assert labels[LABEL_SOURCE] == TOML
    assert events.phases()[0] == "building"
    assert events.phases()[-1] == "built"
    assert "python3-pytest" in events.output()  # the build's lines went out as events
    code, out = run_in(
        docker_client, env.image, repo.work, "id -u; python3 -m pytest -q -p no:cacheprovider"
    )
    assert out.splitlines()[0] != "0"  # not root
    assert code == 1
    assert "1 failed" in out
    assert "test_add" in out


async def prepare_all(
    environments: list[Environments], repo: Repo, commit: str, events: Events
) -> list[PreparedEnvironment]:
    return list(
        await asyncio.gather(*(e.prepare(repo.bare, commit, progress=events) for e in environments))
    )


async def test_one_build_for_ten_agents_and_again_only_when_an_input_changes(
    docker_client: docker.DockerClient, sandbox_image: str, redis: Redis, unique: str, repo: Repo
) -> None:
    first = repo.commit(
        {
            TOML: (
                'setup = ["sleep 2", "cat requirements.txt > /etc/requirements-seen"]\n'
                'inputs = ["requirements*.txt"]\n'
            ),
            "requirements.txt": "one\n",
            "README.md": "v1\n",
        }
    )
    # ten spawners (each its own Environments and Docker client) sharing Valkey and Docker
    clients = [docker.from_env(timeout=120) for _ in range(10)]
    spawners = [envs(c, redis, unique, sandbox_image, wait_poll_s=0.2) for c in clients]
    try:
        events = Events()
        results = await prepare_all(spawners, repo, first, events)
        assert sum(r.built for r in results) == 1
        assert len({r.image for r in results}) == 1
        assert events.phases().count("building") == 1
        image = results[0].image
        assert image is not None

        readme = repo.commit({"README.md": "v2\n"})  # not an input: the same image
        again = Events()
        unchanged = await prepare_all(spawners[:3], repo, readme, again)
        assert {r.image for r in unchanged} == {image}
        assert not any(r.built for r in unchanged)
        assert "building" not in again.phases()

        changed = repo.commit({"requirements.txt": "two\n"})
        rebuilt = await prepare_all(spawners, repo, changed, Events())
        assert sum(r.built for r in rebuilt) == 1
        new_image = rebuilt[0].image
        assert new_image is not None
        assert new_image != image
        code, out = run_in(docker_client, new_image, repo.work, "cat /etc/requirements-seen")
        assert (code, out.strip()) == (0, "two")
    finally:
        for client in clients:
            client.close()


async def test_a_broken_setup_fails_with_its_output_and_is_not_retried(
    docker_client: docker.DockerClient, sandbox_image: str, redis: Redis, unique: str, repo: Repo
) -> None:
    base = repo.commit(
        {TOML: 'setup = ["echo preparing", "echo broken-step-output-42 >&2; exit 3"]\n'}
    )
    environments = envs(docker_client, redis, unique, sandbox_image)
    with pytest.raises(BuildFailedError) as caught:
        await environments.prepare(repo.bare, base)
    error = caught.value
    assert not error.retryable
    assert "broken-step-output-42" in error.message
    assert "returned a non-zero code: 3" in error.message
    # another agent of the same key gets the same error at once, without building again
    events = Events()
    started = time.monotonic()
    with pytest.raises(BuildFailedError, match="broken-step-output-42"):
        await envs(docker_client, redis, unique, sandbox_image).prepare(
            repo.bare, base, progress=events
        )
    assert time.monotonic() - started < 5
    assert "building" not in events.phases()


async def test_a_build_that_takes_too_long_is_stopped(
    docker_client: docker.DockerClient, sandbox_image: str, redis: Redis, unique: str, repo: Repo
) -> None:
    marker = f"sleep 3{unique[:3].translate(str.maketrans('abcdef', '123456'))}"
    base = repo.commit({TOML: f'setup = ["echo started", "{marker}"]\n'})
    started = time.monotonic()
    with pytest.raises(BuildTimeoutError) as caught:
        await envs(docker_client, redis, unique, sandbox_image, build_timeout_s=8).prepare(
            repo.bare, base
        )
    assert time.monotonic() - started < 60
    assert "MOSAIC_ENV_BUILD_TIMEOUT_S" in caught.value.message
    assert marker in caught.value.message  # the step had started: its line is in the tail
    assert not caught.value.retryable
    deadline = time.monotonic() + 20  # the daemon cancels the step's container
    while time.monotonic() < deadline:
        running = [c for c in docker_client.api.containers() if marker in str(c.get("Command", ""))]
        if not running:
            break
        await asyncio.sleep(0.5)
    assert running == []


async def test_a_cancelled_prepare_stops_its_build_and_frees_the_key(
    docker_client: docker.DockerClient, sandbox_image: str, redis: Redis, unique: str, repo: Repo
) -> None:
    """An agent killed while its environment builds: the build stops, the lock goes."""
    marker = f"sleep 4{unique[:3].translate(str.maketrans('abcdef', '123456'))}"
    base = repo.commit({TOML: f'setup = ["{marker}"]\n'})
    events = Events()
    preparing = asyncio.create_task(
        envs(docker_client, redis, unique, sandbox_image).prepare(repo.bare, base, progress=events)
    )

    def sleeping() -> list[Any]:
        return [c for c in docker_client.api.containers() if marker in str(c.get("Command", ""))]

    deadline = time.monotonic() + 60
    while not sleeping():
        assert time.monotonic() < deadline, events.output()
        await asyncio.sleep(0.2)
    preparing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await preparing
    deadline = time.monotonic() + 20
    while sleeping() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert sleeping() == []
    assert await redis.keys(f"t{unique}:env:lock:*") == []
    assert await redis.keys(f"t{unique}:env:failed:*") == []  # a cancel is not a failure


async def test_a_devcontainer_repository_gets_its_environment(
    docker_client: docker.DockerClient, sandbox_image: str, redis: Redis, unique: str, repo: Repo
) -> None:
    devcontainer = """{
  // a Dockerfile, its args, a postCreateCommand, containerEnv and a non-root user
  "build": { "dockerfile": "Dockerfile", "args": { "GREETING": "hello from the Dockerfile" } },
  "postCreateCommand": "install -m 755 tools/check.sh /usr/local/bin/project-check",
  "containerEnv": { "APP_ENV": "dev" },
  "remoteUser": "agent",
  "customizations": { "vscode": { "extensions": ["ms-python.python"] } },
}
"""
    dockerfile = (
        f"FROM {sandbox_image}\nARG GREETING\nUSER root\n"
        'RUN echo "$GREETING" > /etc/greeting\nUSER agent\n'
    )
    base = repo.commit(
        {
            ".devcontainer/devcontainer.json": devcontainer,
            ".devcontainer/Dockerfile": dockerfile,
            "tools/check.sh": "#!/bin/sh\npython3 -m unittest -q 2>&1 | tail -1\n",
            "test_calc.py": (
                "import unittest\n\n\nclass T(unittest.TestCase):\n"
                "    def test_ok(self):\n        self.assertEqual(1 + 1, 2)\n"
            ),
        }
    )
    env = await envs(docker_client, redis, unique, sandbox_image).prepare(repo.bare, base)
    assert env.built
    assert env.source == ".devcontainer/devcontainer.json"
    assert env.env == {"APP_ENV": "dev"}
    assert env.image is not None
    code, out = run_in(
        docker_client, env.image, repo.work, "cat /etc/greeting; id -un; project-check"
    )
    assert code == 0, out
    assert out.splitlines() == ["hello from the Dockerfile", "agent", "OK"]


async def test_a_node_project_installs_from_npm_with_npm_ci(
    docker_client: docker.DockerClient, sandbox_image: str, redis: Redis, unique: str, repo: Repo
) -> None:
    """Debian's nodejs and npm, then ``npm ci`` from the npm registry through the host's CA
    bundle; ``npm test`` then runs without network in the worktree (no node_modules in it)."""
    package = {
        "name": "demo",
        "version": "1.0.0",
        "private": True,
        "scripts": {"test": "node test.js"},
        "dependencies": {"is-number": "7.0.0"},
    }
    lock = {
        "name": "demo",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {
            "": {"name": "demo", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}},
            "node_modules/is-number": {"version": "7.0.0", "engines": {"node": ">=0.12.0"}},
        },
    }
    base = repo.commit(
        {
            TOML: (
                f'setup = ["apt-get update", "{APT} nodejs npm", '
                '"npm ci --no-audit --no-fund"]\n'
                'inputs = ["package.json", "package-lock.json"]\n'
            ),
            "package.json": json.dumps(package, indent=2) + "\n",
            "package-lock.json": json.dumps(lock, indent=2) + "\n",
            "test.js": (
                "const isNumber = require('is-number');\n"
                "if (!isNumber(5) || isNumber('x')) { process.exit(1); }\n"
                "console.log('node test ok');\n"
            ),
        }
    )
    started = time.monotonic()
    env = await envs(docker_client, redis, unique, sandbox_image).prepare(repo.bare, base)
    print(f"node environment built in {time.monotonic() - started:.0f}s")
    assert env.image is not None
    assert not (repo.work / "node_modules").exists()
    code, out = run_in(docker_client, env.image, repo.work, "npm test --silent 2>&1")
    assert code == 0, out
    assert "node test ok" in out


async def test_old_images_are_pruned_by_the_policy(
    docker_client: docker.DockerClient, sandbox_image: str, redis: Redis, unique: str, repo: Repo
) -> None:
    environments = envs(docker_client, redis, unique, sandbox_image, keep_per_repository=2)
    images = []
    for version in range(3):
        commit = repo.commit(
            {TOML: 'inputs = ["v.txt"]\nenv = { N = "1" }\n', "v.txt": f"{version}\n"}
        )
        env = await environments.prepare(repo.bare, commit)
        assert env.built
        images.append(env.image)
    assert len(set(images)) == 3
    with pytest.raises(ImageNotFound):
        image_attrs(docker_client.api, str(images[0]))  # the least recently used went
    for kept in images[1:]:
        image_attrs(docker_client.api, str(kept))


async def test_a_dockerfile_the_daemon_refuses_fails_without_retry(
    docker_client: docker.DockerClient, sandbox_image: str, redis: Redis, unique: str, repo: Repo
) -> None:
    base = repo.commit(
        {
            ".devcontainer/devcontainer.json": '{"build": {"dockerfile": "Dockerfile"}}',
            ".devcontainer/Dockerfile": f"FROM {sandbox_image}\nNOTANINSTRUCTION x\n",
        }
    )
    with pytest.raises(BuildFailedError) as caught:
        await envs(docker_client, redis, unique, sandbox_image).prepare(repo.bare, base)
    assert not caught.value.retryable
    assert "NOTANINSTRUCTION" in caught.value.message
