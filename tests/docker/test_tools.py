"""The agent's tools through the container: confined file operations and commands."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from shared.sandbox.base import DirEntry, SandboxError, SandboxPathError
from shared.sandbox.docker import DockerSandbox

pytestmark = pytest.mark.docker

ESCAPES = [
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "src/../../x",
    "~/x",
    "outlink",
    "dirlink/passwd",
]


@pytest.fixture
def links(worktree: Path, tmp_path: Path) -> None:
    """Symlinks inside the worktree pointing out of it (to a file and to a directory)."""
    secret = tmp_path / "outside.txt"
    secret.write_text("host secret\n")
    (worktree / "outlink").symlink_to(secret)
    (worktree / "dirlink").symlink_to("/etc")


@pytest.mark.usefixtures("links")
@pytest.mark.parametrize("path", ESCAPES)
async def test_read_outside_is_refused(sandbox: DockerSandbox, path: str) -> None:
    with pytest.raises(SandboxPathError):
        await sandbox.read_file(path, max_bytes=1000)


@pytest.mark.usefixtures("links")
@pytest.mark.parametrize("path", ESCAPES)
async def test_write_outside_is_refused(sandbox: DockerSandbox, path: str, tmp_path: Path) -> None:
    with pytest.raises(SandboxPathError):
        await sandbox.write_file(path, b"evil\n")
    assert (tmp_path / "outside.txt").read_text() == "host secret\n"


@pytest.mark.usefixtures("links")
@pytest.mark.parametrize("path", ["..", "../..", "/", "/etc", "dirlink", "dirlink/"])
async def test_list_outside_is_refused(sandbox: DockerSandbox, path: str) -> None:
    with pytest.raises(SandboxPathError):
        await sandbox.list_dir(path)


async def test_symlink_made_inside_is_refused(sandbox: DockerSandbox) -> None:
    # A link the agent itself plants, pointing at the container's root.
    assert (await sandbox.exec("ln -s / rootlink", timeout=10)).exit_code == 0
    with pytest.raises(SandboxPathError):
        await sandbox.read_file("rootlink/etc/passwd", max_bytes=100)
    with pytest.raises(SandboxPathError):
        await sandbox.write_file("rootlink/tmp/x", b"x")
    with pytest.raises(SandboxPathError):
        await sandbox.list_dir("rootlink")


async def test_links_inside_the_worktree_work(sandbox: DockerSandbox, worktree: Path) -> None:
    (worktree / "alias.py").symlink_to("src/app.py")
    assert (
        await sandbox.read_file("alias.py", max_bytes=100) == b"def add(a, b):\n    return a + b\n"
    )


async def test_normal_paths_work(sandbox: DockerSandbox, worktree: Path) -> None:
    assert await sandbox.read_file("README.md", max_bytes=100) == b"# demo\n"
    assert await sandbox.read_file("./src/../README.md", max_bytes=3) == b"# d"
    await sandbox.write_file("new/deep/file.txt", b"hello\n")
    assert (worktree / "new" / "deep" / "file.txt").read_bytes() == b"hello\n"
    await sandbox.write_file("README.md", b"replaced\n")
    assert (worktree / "README.md").read_text() == "replaced\n"
    assert await sandbox.list_dir(".") == [
        DirEntry("README.md", False, 9),
        DirEntry("new", True, (worktree / "new").stat().st_size),
        DirEntry("src", True, (worktree / "src").stat().st_size),
    ]
    assert [e.name for e in await sandbox.list_dir("src")] == ["app.py"]


async def test_binary_and_large_files_round_trip(sandbox: DockerSandbox) -> None:
    data = os.urandom(1_500_000) + bytes(range(256))
    await sandbox.write_file("blob.bin", data)
    assert await sandbox.read_file("blob.bin", max_bytes=len(data)) == data
    await sandbox.write_file("empty", b"")
    assert await sandbox.read_file("empty", max_bytes=10) == b""


async def test_file_errors_are_not_path_errors(sandbox: DockerSandbox) -> None:
    with pytest.raises(SandboxError, match="no such file") as missing:
        await sandbox.read_file("missing.txt", max_bytes=10)
    assert not isinstance(missing.value, SandboxPathError)
    with pytest.raises(SandboxError, match="is a directory"):
        await sandbox.read_file("src", max_bytes=10)
    with pytest.raises(SandboxError, match="is a directory"):
        await sandbox.write_file("src", b"x")
    with pytest.raises(SandboxError, match="not a directory"):
        await sandbox.list_dir("README.md")
    with pytest.raises(SandboxError, match="no such directory"):
        await sandbox.list_dir("nope")


async def test_exec_output_and_exit_code(sandbox: DockerSandbox) -> None:
    result = await sandbox.exec("echo out; echo err >&2; exit 3", timeout=10)
    assert result.exit_code == 3
    assert result.output == "out\nerr\n"
    assert not result.timed_out
    assert not result.truncated


async def test_exec_output_is_truncated(sandbox: DockerSandbox) -> None:
    result = await sandbox.exec(
        "head -c 100000 /dev/zero | tr '\\0' a", timeout=10, max_output=1000
    )
    assert result.exit_code == 0
    assert result.truncated
    assert result.output == "a" * 1000


async def test_exec_timeout_kills_the_command(sandbox: DockerSandbox) -> None:
    started = time.monotonic()
    result = await sandbox.exec("sleep 60 & sleep 60; echo never", timeout=1)
    assert time.monotonic() - started < 5
    assert result.timed_out
    assert "never" not in result.output
    # Neither sleeper survives: the whole process group was killed.
    survivors = await sandbox.exec("cat /proc/[0-9]*/cmdline | tr '\\0' ' '", timeout=10)
    assert "sleep 60" not in survivors.output


async def test_background_jobs_die_with_their_command(sandbox: DockerSandbox) -> None:
    result = await sandbox.exec("sleep 60 & echo started", timeout=10)
    assert (result.exit_code, result.output) == (0, "started\n")
    survivors = await sandbox.exec("cat /proc/[0-9]*/cmdline | tr '\\0' ' '", timeout=10)
    assert "sleep 60" not in survivors.output
