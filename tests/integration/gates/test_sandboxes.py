"""Gates run where the agent ran: in each sandbox backend, from the agent's environment.

Parametrized by the backends of ``shared.sandbox``: ``none`` always, ``docker`` with a
daemon and the sandbox image (else skipped naming what is missing, failed under
``CI=true``), ``bwrap`` once its backend is in ``shared/sandbox``. The docker tests
build a tiny environment image FROM the sandbox image with pytest copied in (no
network), and show the gates use it: what the default image lacks fails as "not
checked", the same repository in the environment image runs its tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import DockerException, ImageNotFound

from services.gates.runner import GATE_OWNER, FixedSandboxes
from shared.messages.gates import GateCheckRequested, GateDecision, GateResult
from shared.sandbox.base import SandboxError, SandboxFactory
from shared.sandbox.containers import LABEL_OWNER, LABEL_TASK
from shared.sandbox.select import sandbox_factory
from shared.sandbox.settings import SandboxSettings
from tests.integration.gates.conftest import MakeChecker
from tests.integration.gates.samples import BROKEN_PERIMETER, build_plain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SANDBOX_IMAGE = os.environ.get("MOSAIC_SANDBOX_IMAGE", "mosaic/sandbox:latest")
SITE = Path(pytest.__file__).resolve().parent.parent
PYTEST_PACKAGES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py.py")
"""What ``python3 -m pytest`` needs: pure Python, copied from this venv into the image."""
MARKER = "/etc/mosaic-gates-environment"


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


KINDS = [
    pytest.param("none", id="none"),
    pytest.param("docker", id="docker", marks=pytest.mark.docker),
    pytest.param("bwrap", id="bwrap"),
]


@pytest.fixture(params=KINDS)
async def factory(request: pytest.FixtureRequest) -> SandboxFactory:
    """The factory ``MOSAIC_SANDBOX=<kind>`` selects, as the gates service would."""
    return await _factory(request.param)


async def _factory(kind: str) -> SandboxFactory:
    try:
        made = await sandbox_factory(SandboxSettings(MOSAIC_SANDBOX=kind))
    except SandboxError as exc:
        _missing(f"no {kind} sandbox here: {exc.message}")
    assert made.kind == kind, f"MOSAIC_SANDBOX={kind} gave a {made.kind} sandbox"
    return made


@pytest.fixture(scope="module")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        client.images.get(SANDBOX_IMAGE)
    except ImageNotFound:
        _missing(f"the sandbox image {SANDBOX_IMAGE} is not built (scripts/build-images.sh)")
    except DockerException as exc:
        _missing(f"no Docker daemon: {exc}")
    yield client
    client.close()


def _context() -> bytes:
    """A build context: the Dockerfile and pytest's packages, as a tar."""
    dockerfile = (
        f"FROM {SANDBOX_IMAGE}\n"
        "COPY site/ /usr/local/lib/python3.11/dist-packages/\n"
        "USER root\n"
        f"RUN echo environment-image > {MARKER}\n"
        "USER agent\n"
    ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for package in PYTEST_PACKAGES:
            tar.add(
                SITE / package,
                arcname=f"site/{package}",
                filter=lambda t: None if "__pycache__" in t.name else t,
            )
    return buffer.getvalue()


@pytest.fixture(scope="module")
def environment_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """An environment image FROM the sandbox image, with pytest; removed afterwards."""
    tag = f"mosaic-test/gates-env:{uuid.uuid4().hex[:10]}"
    docker_client.images.build(
        fileobj=io.BytesIO(_context()),
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        network_mode="none",
    )
    yield tag
    with contextlib.suppress(DockerException):
        docker_client.images.remove(tag, force=True)


def ask(work: Path, task: str, profile: str = "minimal", **extra: object) -> GateCheckRequested:
    return GateCheckRequested(
        agent_id="sbx", task_id=task, worktree=str(work), profile=profile, **extra
    )


def by_name(decision: GateDecision) -> dict[str, GateResult]:
    return {r.name: r for r in decision.results}


def gate_containers(client: docker.DockerClient, task: str) -> list[object]:
    labels = [f"{LABEL_OWNER}={GATE_OWNER}", f"{LABEL_TASK}={task}"]
    return list(client.containers.list(all=True, filters={"label": labels}))


def processes_with(marker: str) -> list[str]:
    """Command lines of live processes that contain ``marker`` (any pid namespace)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if marker in cmdline and "pytest" not in cmdline:
                    found.append(cmdline)
    return found


@pytest.mark.docker
async def test_gates_run_in_the_agents_environment_image(
    make_checker: MakeChecker,
    docker_client: docker.DockerClient,
    environment_image: str,
    tmp_path: Path,
    unique: str,
) -> None:
    made = await sandbox_factory(SandboxSettings(MOSAIC_SANDBOX="docker"))
    checker = make_checker(sandboxes=FixedSandboxes(made))
    work = build_plain(tmp_path)
    (work / "shapes.py").write_text(BROKEN_PERIMETER)
    task = f"env-{unique}"
    # the default sandbox image has no pytest: not checked, never passed
    plain = by_name(await checker.decide(ask(work, task)))["tests"]
    assert plain.status == "failed"
    assert plain.excerpt == (
        "not checked: pytest is not installed where the gates run "
        "(docker sandbox, image MOSAIC_SANDBOX_IMAGE)"
    )
    # the agent's environment image has it: the failing test is found and named
    decision = await checker.decide(ask(work, task, environment_image=environment_image))
    tests = by_name(decision)["tests"]
    assert not decision.approved
    assert tests.status == "failed", tests
    assert "test_perimeter" in tests.excerpt
    assert "1 failed, 1 passed" in tests.excerpt
    # fixed, it passes there; and a marker only that image has is what the gate sees
    (work / "shapes.py").write_text(
        (work / "shapes.py").read_text().replace("w + h", "2 * (w + h)")
    )
    (work / "test_where.py").write_text(
        "from pathlib import Path\n\n\ndef test_in_the_environment_image() -> None:\n"
        f"    assert Path({MARKER!r}).read_text() == 'environment-image\\n'\n"
    )
    decision = await checker.decide(ask(work, task, environment_image=environment_image))
    assert decision.approved, decision
    assert "3 passed" in by_name(decision)["tests"].excerpt
    assert gate_containers(docker_client, task) == []  # every gate sandbox removed


@pytest.mark.docker
async def test_a_missing_environment_image_fails_the_check_with_its_name(
    make_checker: MakeChecker, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    made = await sandbox_factory(SandboxSettings(MOSAIC_SANDBOX="docker"))
    checker = make_checker(sandboxes=FixedSandboxes(made))
    work = build_plain(tmp_path)
    decision = await checker.decide(
        ask(work, "no-image", environment_image="mosaic-env/never-built:0")
    )
    assert not decision.approved
    assert decision.error is not None
    assert "mosaic-env/never-built:0" in decision.error.message


async def test_the_environment_variables_reach_gate_commands(
    make_checker: MakeChecker, factory: SandboxFactory, tmp_path: Path, unique: str
) -> None:
    probe = 'test "$GATE_PROBE" = from-the-agent || { echo "GATE_PROBE=[$GATE_PROBE]"; exit 1; }'
    toml = f"[gates]\ntests = '{probe}'\n"
    work = build_plain(tmp_path, files={".mosaic/gates.toml": toml})
    checker = make_checker(sandboxes=FixedSandboxes(factory))
    env = {"GATE_PROBE": "from-the-agent"}
    decision = await checker.decide(ask(work, f"env-{unique}", environment_env=env))
    assert decision.approved, decision
    without = await checker.decide(ask(work, f"env-{unique}"))
    assert "GATE_PROBE=[]" in by_name(without)["tests"].excerpt


@pytest.fixture(params=[k for k in KINDS if k.id != "none"])
async def isolating_factory(request: pytest.FixtureRequest) -> SandboxFactory:
    """A backend that enforces mounts (``none`` is bare host processes: it cannot)."""
    return await _factory(request.param)


async def test_the_worktree_is_read_only_unless_the_gate_is_writable(
    make_checker: MakeChecker, isolating_factory: SandboxFactory, tmp_path: Path, unique: str
) -> None:
    factory = isolating_factory
    toml = (
        "detect = false\n[gates]\ntests = 'touch made.txt'\n"
        "build = { command = 'touch built.txt', writable = true }\n"
        "typecheck = false\nlint = false\ncoverage = false\nai-review = false\n"
    )
    work = build_plain(tmp_path, files={".mosaic/gates.toml": toml})
    checker = make_checker(sandboxes=FixedSandboxes(factory))
    results = by_name(await checker.decide(ask(work, f"ro-{unique}", profile="strict")))
    assert results["tests"].status == "failed"
    assert not (work / "made.txt").exists()
    assert results["build"].status == "passed", results["build"]
    assert (work / "built.txt").exists()


@pytest.fixture
def docker_or_none() -> Iterator[docker.DockerClient | None]:
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except DockerException:
        yield None
        return
    yield client
    client.close()


async def test_a_cancelled_check_leaves_nothing_behind(
    make_checker: MakeChecker,
    factory: SandboxFactory,
    docker_or_none: docker.DockerClient | None,
    tmp_path: Path,
    unique: str,
) -> None:
    seconds = f"299.{int(unique[:6], 16) % 100000:05d}"
    toml = f"[gates]\ntests = 'sleep {seconds}'\n"
    work = build_plain(tmp_path, files={".mosaic/gates.toml": toml})
    checker = make_checker(sandboxes=FixedSandboxes(factory))
    task = f"cancel-{unique}"
    check = asyncio.create_task(checker.decide(ask(work, task)))
    for _ in range(300):
        if processes_with(f"sleep {seconds}"):
            break
        await asyncio.sleep(0.05)
    else:
        check.cancel()
        pytest.fail("the gate command never started")
    check.cancel()
    with pytest.raises(asyncio.CancelledError):
        await check
    for _ in range(100):
        left = processes_with(f"sleep {seconds}")
        containers = gate_containers(docker_or_none, task) if docker_or_none else []
        if not left and not containers:
            break
        await asyncio.sleep(0.1)
    assert processes_with(f"sleep {seconds}") == []
    if docker_or_none is not None:
        assert gate_containers(docker_or_none, task) == []
