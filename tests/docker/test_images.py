"""The locally built images: usable offline, by testcontainers too (nothing pulled)."""

from __future__ import annotations

import os
import subprocess
import time

import docker
import pytest
from testcontainers.core.container import DockerContainer

from .conftest import ROOT

pytestmark = pytest.mark.docker


def test_sandbox_image_has_the_tools(
    docker_client: docker.DockerClient, sandbox_image: str
) -> None:
    out = docker_client.containers.run(
        sandbox_image,
        ["sh", "-c", "id -un; pwd; python3 -c 'print(1)'; git --version; make --version | head -1"],
        remove=True,
        network_mode="none",
    ).decode()
    lines = out.splitlines()
    assert lines[:3] == ["agent", "/workspace", "1"]
    assert lines[3].startswith("git version")
    assert lines[4].startswith("GNU Make")


def test_build_script_is_cached(sandbox_image: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-images.sh"), "--offline"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "MOSAIC_SANDBOX_IMAGE": sandbox_image},
    )
    assert result.returncode == 0, result.stderr
    assert "cached" in result.stderr
    assert time.monotonic() - started < 10


def test_testcontainers_runs_the_local_image(sandbox_image: str) -> None:
    assert os.environ["TESTCONTAINERS_RYUK_DISABLED"] == "true"
    container = DockerContainer(sandbox_image).with_command("sleep infinity")
    with container:
        code, out = container.get_wrapped_container().exec_run(["id", "-u"])
    assert isinstance(out, bytes)
    assert (code, out.decode().strip()) == (0, "1000")
