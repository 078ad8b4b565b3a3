"""The docker runner against a real daemon: hardened, read-only, throwaway containers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import pytest
from docker.errors import DockerException

from services.gates.config import GateCommand
from services.gates.docker_runner import LABEL_COMPONENT, DockerRunner
from services.gates.errors import RunnerError
from services.gates.mechanical import run_gate

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

IMAGE = os.environ.get("MOSAIC_SANDBOX_IMAGE", "mosaic/sandbox:latest")


@pytest.fixture(scope="module")
async def runner() -> AsyncIterator[DockerRunner]:
    try:
        client = docker.from_env(timeout=60)
        made = DockerRunner(client, IMAGE)
        await made.check()
    except (DockerException, RunnerError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the docker runner cannot run: {exc}", pytrace=False)
        pytest.skip(f"no Docker daemon or image {IMAGE}: {exc}")
    yield made
    client.close()


async def test_commands_run_hardened_and_leave_no_container(
    runner: DockerRunner, tmp_path: Path
) -> None:
    tmp_path.chmod(0o755)  # as a worktree handed to the sandbox uid is
    (tmp_path / "data.txt").write_text("hello\n")
    script = (
        "cat data.txt; id -u; "
        "touch made.txt 2>/dev/null && echo WROTE || echo READONLY; "
        "touch /etc/x 2>/dev/null && echo ROOTFS || echo ROOTFS-RO; "
        "python3 -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), 2)' "
        "2>/dev/null && echo NET || echo NONET; "
        "grep -c CapEff /proc/self/status >/dev/null; grep CapEff /proc/self/status; exit 3"
    )
    result = await runner.run(script, tmp_path, timeout=30, writable=False, max_output=10_000)
    assert result.exit_code == 3
    out = result.output
    assert "hello" in out
    assert "READONLY" in out
    assert "ROOTFS-RO" in out
    assert "NONET" in out
    assert "CapEff:\t0000000000000000" in out
    assert out.splitlines()[1] != "0"  # not root
    assert not (tmp_path / "made.txt").exists()
    client = docker.from_env()
    try:
        assert client.containers.list(all=True, filters={"label": f"{LABEL_COMPONENT}=gates"}) == []
    finally:
        client.close()


async def test_missing_tool_is_skipped_and_timeouts_fail(
    runner: DockerRunner, tmp_path: Path
) -> None:
    gate = GateCommand(name="lint", command="no-such-linter .", tool="no-such-linter", timeout=30)
    result = await run_gate(
        gate, runner, tmp_path, timeout=30, excerpt_chars=500, max_output=10_000,
        coverage_threshold=85,
    )  # fmt: skip
    assert result.status == "skipped"
    assert "no-such-linter is not installed where gates run (docker runner)" in result.excerpt
    slow = GateCommand(name="tests", command="sleep 30", tool="sleep", timeout=2)
    result = await run_gate(
        slow, runner, tmp_path, timeout=30, excerpt_chars=500, max_output=10_000,
        coverage_threshold=85,
    )  # fmt: skip
    assert result.status == "failed"
    assert "timed out after 2s" in result.excerpt
