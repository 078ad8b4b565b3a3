"""End-to-end fixtures: the whole system as containers, from locally built images.

Each service runs in its own container (images from containers/services.Dockerfile), NATS
and Valkey too, on a user-defined network; sandboxes are sibling containers started
through the host's daemon. Images are built once per session by
``scripts/build-images.sh --offline --services`` (cached by a hash of their sources), so
nothing is pulled; testcontainers runs without Ryuk. Without a daemon the tier is
skipped naming what is missing, or fails under ``CI=true``.

The workspace is a host directory bind-mounted at the same path in every service
container, as compose does (see docs/deploy.md), and the gateway is published on
127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from docker.errors import DockerException, NotFound

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import contextlib

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
PREFIX = os.environ.get("MOSAIC_IMAGE_PREFIX", "mosaic")
TAG = os.environ.get("MOSAIC_IMAGE_TAG", "latest")
SANDBOX_IMAGE = os.environ.get("MOSAIC_SANDBOX_IMAGE", "mosaic/sandbox:latest")
SERVICE_UID = 1000  # the `mosaic` user of the service images
BUILD_TIMEOUT_S = 900
LABEL = "mosaic.e2e"
API_TOKEN = "e2e-operator-token"
ADMIN_TOKEN = "e2e-admin-token"
ACK_WAIT_S = 3.0
FINAL = {"completed", "failed", "killed"}


def image(name: str) -> str:
    return f"{PREFIX}/{name}:{TAG}"


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the e2e tier cannot run: {reason}", pytrace=False)
    pytest.skip(f"e2e needs Docker: {reason}")


def _daemon() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException:
        return None
    return client


_build_error: list[str] = []
_built: list[bool] = []


def build_images() -> str | None:
    """Build (or confirm cached) every image; ``None`` on success, else why not."""
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-images.sh"), "--offline", "--services"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
        env={**os.environ, "MOSAIC_SANDBOX_IMAGE": SANDBOX_IMAGE},
    )
    if result.returncode != 0:
        return f"scripts/build-images.sh --offline --services failed: {result.stderr[-2000:]}"
    print(f"\ne2e images ready in {time.monotonic() - started:.1f} s")
    _built.append(True)
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the images before any test starts, outside the per-test timeout."""
    if session.config.option.collectonly:
        return
    if not any(E2E_DIR in Path(str(item.path)).parents for item in session.items):
        return
    client = _daemon()
    if client is None:
        return  # the stack fixture reports it
    client.close()
    error = build_images()
    if error:
        _build_error.append(error)


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.DockerClient]:
    if shutil.which("docker") is None and not Path("/var/run/docker.sock").exists():
        unavailable("no docker CLI and no /var/run/docker.sock (run scripts/ensure-docker.sh)")
    client = _daemon()
    if client is None:
        unavailable("no Docker daemon answers (run scripts/ensure-docker.sh as root)")
    assert client is not None
    if _build_error:
        unavailable(_build_error[0])
    if not _built:
        error = build_images()
        if error:
            unavailable(error)
    yield client
    client.close()


def git(cwd: Path, *args: str) -> str:
    """git as the test's user; the remotes belong to the services' uid, hence safe.directory."""
    return subprocess.run(
        ["git", "-c", "safe.directory=*", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@dataclass
class Stack:
    """The running system: containers by role, the shared host workspace, an HTTP client."""

    client: docker.DockerClient
    network: Network
    home: Path
    run_id: str
    containers: dict[str, DockerContainer] = field(default_factory=dict)
    gateway_url: str = ""
    spawner_count: int = 0
    agent_ids: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ containers
    def env(self) -> dict[str, str]:
        return {
            "NATS_URL": "nats://nats:4222",
            "VALKEY_URL": "redis://valkey:6379/0",
            "MOSAIC_HOME": str(self.home),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "MOSAIC_PROVIDER": "scripted",
            # one host: containers each have a hostname of their own (compose sets it too)
            "MOSAIC_HOST_ID": f"e2e-{self.run_id}",
        }

    def start(
        self,
        role: str,
        image_name: str,
        *,
        env: dict[str, str] | None = None,
        workspace: str | None = None,
        docker_socket: bool = False,
        ports: dict[int, Any] | None = None,
    ) -> DockerContainer:
        container = (
            DockerContainer(image(image_name))
            .with_name(f"mosaic-e2e-{self.run_id}-{role}")
            .with_network(self.network)
            .with_network_aliases(role if role in ("nats", "valkey") else image_name)
        )
        for key, value in (env or {}).items():
            container.with_env(key, value)
        if workspace:
            container.with_volume_mapping(str(self.home), str(self.home), workspace)
        kwargs: dict[str, Any] = {"labels": {LABEL: self.run_id}, "init": True}
        if docker_socket:
            container.with_volume_mapping("/var/run/docker.sock", "/var/run/docker.sock", "rw")
            kwargs["group_add"] = [str(os.stat("/var/run/docker.sock").st_gid)]
        for inner, outer in (ports or {}).items():
            # (host_ip,): a random port on that address only (docker SDK port syntax)
            container.ports[f"{inner}/tcp"] = outer
        container.with_kwargs(**kwargs)
        container.start()
        self.containers[role] = container
        return container

    def start_spawner(self) -> str:
        self.spawner_count += 1
        role = f"spawner{self.spawner_count}"
        self.start(
            role,
            "spawner",
            env={
                **self.env(),
                "MOSAIC_SANDBOX": "docker",
                "MOSAIC_SANDBOX_IMAGE": SANDBOX_IMAGE,
                "TASK_ACK_WAIT_S": str(ACK_WAIT_S),
                "RETRY_BASE_DELAY_S": "0.2",
                "RETRY_MAX_DELAY_S": "1",
                "SPAWNER_CONCURRENCY": "10",
            },
            workspace="rw",
            docker_socket=True,
        )
        self.wait_probe(role, "spawner")
        return role

    def docker_id(self, role: str) -> str:
        return str(self.containers[role].get_wrapped_container().id)

    def hostname_of(self, role: str) -> str:
        return self.docker_id(role)[:12]

    def probe(self, role: str, service: str) -> tuple[int, str]:
        result = self.containers[role].exec(["python", "-m", "shared.healthcheck", service])
        return int(result.exit_code or 0), result.output.decode(errors="replace")

    def wait_probe(self, role: str, service: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        code, output = 1, ""
        while time.monotonic() < deadline:
            code, output = self.probe(role, service)
            if code == 0:
                return
            time.sleep(0.5)
        logs = self.containers[role].get_logs()[1].decode(errors="replace")[-3000:]
        raise AssertionError(f"{role} not healthy in {timeout}s: {output}\n{logs}")

    def kill_container(self, role: str) -> None:
        self.client.api.kill(self.docker_id(role))

    def stop_all(self) -> None:
        for container in reversed(list(self.containers.values())):
            with contextlib.suppress(NotFound, DockerException, AttributeError):
                self.client.api.remove_container(
                    str(container.get_wrapped_container().id), force=True, v=True
                )
        self.containers.clear()

    # ------------------------------------------------------------------ agents
    def spawn(self, http: httpx.Client, body: dict[str, Any]) -> str:
        answer = http.post("/agents/spawn", json=body)
        assert answer.status_code == 202, answer.text
        agent_id = str(answer.json()["agentId"])
        self.agent_ids.append(agent_id)
        return agent_id

    # ------------------------------------------------------------------ workspace
    def make_repo(self, name: str) -> Path:
        """A bare remote on the shared host path, with a unittest the minimal gate runs."""
        remotes = self.home / "remotes"
        remotes.mkdir(exist_ok=True)
        bare = remotes / f"{name}.git"
        seed = self.home / "seeds" / name
        seed.mkdir(parents=True)
        git(self.home, "init", "-q", "--bare", "-b", "main", str(bare))
        git(self.home, "init", "-q", "-b", "main", str(seed))
        (seed / "app.py").write_text("def add(a, b):\n    return a + b\n")
        (seed / "test_app.py").write_text(
            "import unittest\n\nimport app\n\n\n"
            "class AddTest(unittest.TestCase):\n"
            "    def test_add(self):\n        self.assertEqual(app.add(2, 3), 5)\n"
        )
        (seed / ".mosaic").mkdir()
        (seed / ".mosaic" / "gates.toml").write_text(
            'detect = false\n\n[gates]\ntests = "python3 -m unittest discover -q"\n'
        )
        git(seed, "add", "-A")
        git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed")
        git(seed, "push", "-q", str(bare), "main")
        subprocess.run(["chown", "-R", f"{SERVICE_UID}:{SERVICE_UID}", str(bare)], check=True)
        return bare

    def worktrees(self) -> list[Path]:
        return [p for p in (self.home / "repos").glob("*_worktrees/*") if p.is_dir()]

    def sandboxes(self, agent_ids: list[str]) -> list[str]:
        found: list[str] = []
        for agent_id in agent_ids:
            found += [
                str(c["Id"])
                for c in self.client.api.containers(
                    all=True, filters={"label": f"mosaic.agent_id={agent_id}"}
                )
            ]
        return found


def start_stack(client: docker.DockerClient, spawners: int) -> Stack:
    run_id = uuid.uuid4().hex[:8]
    home = Path(f"/tmp/mosaic-e2e-{run_id}")
    home.mkdir(mode=0o755)
    os.chown(home, SERVICE_UID, SERVICE_UID)
    network = Network()
    network.name = f"mosaic-e2e-{run_id}"
    network.create()
    stack = Stack(client=client, network=network, home=home, run_id=run_id)
    try:
        base = stack.env()
        stack.start("nats", "nats")
        stack.start("valkey", "valkey")
        stack.start("gitops", "gitops", env=base, workspace="rw")
        stack.start(
            "gates",
            "gates",
            env={**base, "MOSAIC_SANDBOX": "docker", "MOSAIC_SANDBOX_IMAGE": SANDBOX_IMAGE},
            workspace="rw",
            docker_socket=True,
        )
        stack.start(
            "killswitch",
            "killswitch",
            env={**base, "KILLSWITCH_DOCKER": "true"},
            docker_socket=True,
        )
        stack.start(
            "gateway",
            "gateway",
            env={
                **base,
                "MOSAIC_HOME": "/home/mosaic/.mosaic",
                "GATEWAY_HOST": "0.0.0.0",
                "MOSAIC_API_TOKEN": API_TOKEN,
                "MOSAIC_ADMIN_TOKEN": ADMIN_TOKEN,
            },
            workspace="ro",
            ports={3001: ("127.0.0.1",)},
        )
        for _ in range(spawners):
            stack.start_spawner()
        stack.gateway_url = f"http://127.0.0.1:{gateway_port(client, stack.docker_id('gateway'))}"
        wait_gateway(stack)
        for role in ("gitops", "gates", "killswitch"):
            stack.wait_probe(role, role)
    except BaseException:
        stop_stack(stack)
        raise
    return stack


def gateway_port(client: docker.DockerClient, container_id: str) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ports = client.api.inspect_container(container_id)["NetworkSettings"]["Ports"]
        bound = (ports or {}).get("3001/tcp")
        if bound:
            assert bound[0]["HostIp"] == "127.0.0.1", bound
            return int(bound[0]["HostPort"])
        time.sleep(0.2)
    raise AssertionError("gateway port was never published")


def wait_gateway(stack: Stack, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{stack.gateway_url}/health", timeout=2)
            last = answer.text
            if answer.status_code == 200 and answer.json().get("status") == "healthy":
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    logs = stack.containers["gateway"].get_logs()[1].decode(errors="replace")[-3000:]
    raise AssertionError(f"gateway not healthy in {timeout}s: {last}\n{logs}")


def stop_stack(stack: Stack) -> None:
    stack.stop_all()
    # sandboxes of this run's agents (the tests assert there are none; this is hygiene)
    for container_id in stack.sandboxes(stack.agent_ids):
        with contextlib.suppress(DockerException):
            stack.client.api.remove_container(container_id, force=True)
    with contextlib.suppress(DockerException):
        stack.network.remove()
    shutil.rmtree(stack.home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(docker_api: docker.DockerClient) -> Iterator[Stack]:
    """Two spawners, one of each other service, NATS and Valkey; shared by the module."""
    started = time.monotonic()
    running = start_stack(docker_api, spawners=2)
    print(f"\nstack up in {time.monotonic() - started:.1f} s ({running.gateway_url})")
    yield running
    stop_stack(running)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=15) as client:
        yield client


@pytest.fixture
def admin(stack: Stack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=15) as client:
        yield client
