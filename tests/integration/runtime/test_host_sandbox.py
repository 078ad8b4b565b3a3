"""The local sandbox: rlimits, a scrubbed environment, process groups killed as a whole."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from shared.sandbox.base import Limits, SandboxError, SandboxPathError, SandboxSpec
from shared.sandbox.host import HostSandbox, HostSandboxFactory

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_dead(pids: list[int], within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        await asyncio.sleep(0.02)
    return False


async def wait_for_pids(path: Path, count: int) -> list[int]:
    for _ in range(200):
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        await asyncio.sleep(0.02)
    raise AssertionError(f"no pids in {path}")


async def test_env_is_scrubbed(sandbox: HostSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-should-not-leak")
    monkeypatch.setenv("CLAUDE_API_KEY", "sk-ant-should-not-leak-either")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    result = await sandbox.exec("env", timeout=5)
    assert result.exit_code == 0
    names = {line.split("=", 1)[0] for line in result.output.splitlines()}
    assert "sk-ant" not in result.output
    assert not names & {"ANTHROPIC_API_KEY", "CLAUDE_API_KEY", "AWS_SECRET_ACCESS_KEY"}
    assert {"PATH", "HOME", "LANG"} <= names
    home = next(
        line.split("=", 1)[1] for line in result.output.splitlines() if line.startswith("HOME=")
    )
    assert Path(home).is_dir()
    assert Path(home) != Path.home()


async def test_runs_in_the_worktree(sandbox: HostSandbox, worktree: Path) -> None:
    result = await sandbox.exec("pwd && ls", timeout=5)
    assert result.output.splitlines()[0] == str(worktree.resolve())
    assert "app.py" in result.output


async def test_file_size_limit_applies(worktree: Path, tmp_path: Path) -> None:
    spec = SandboxSpec("a", "t", worktree, limits=Limits(file_size_mb=1))
    box = await HostSandboxFactory(tmp_root=tmp_path).create(spec)
    try:
        result = await box.exec("head -c 3000000 /dev/zero > big.bin", timeout=10)
        assert result.exit_code != 0
        assert (worktree / "big.bin").stat().st_size <= 1024 * 1024
        with pytest.raises(SandboxError, match="file too large"):
            await box.write_file("big2.bin", b"0" * (2 * 1024 * 1024))
    finally:
        await box.close()


async def test_rlimits_are_set_in_the_child(worktree: Path, tmp_path: Path) -> None:
    spec = SandboxSpec(
        "a", "t", worktree, limits=Limits(memory_mb=512, cpu_seconds=7, file_size_mb=3)
    )
    box = await HostSandboxFactory(tmp_root=tmp_path).create(spec)
    try:
        result = await box.exec("ulimit -t; ulimit -f; ulimit -v; ulimit -c", timeout=5)
        cpu, fsize, vmem, core = result.output.split()
        assert cpu == "7"
        assert int(fsize) * 512 in (
            3 * 1024 * 1024,
            3 * 1024 * 1024 * 2,
        )  # blocks of 512 B or 1 KiB
        assert int(vmem) == 512 * 1024
        assert core == "0"
    finally:
        await box.close()


async def test_timeout_kills_the_whole_group(sandbox: HostSandbox, worktree: Path) -> None:
    started = time.monotonic()
    result = await sandbox.exec("sleep 30 & echo $! > pids; sleep 30", timeout=0.5)
    assert result.timed_out
    assert time.monotonic() - started < 3
    pids = await wait_for_pids(worktree / "pids", 1)
    assert await wait_dead(pids)


async def test_background_children_do_not_hold_exec(sandbox: HostSandbox, worktree: Path) -> None:
    started = time.monotonic()
    result = await sandbox.exec("sleep 30 & echo $! > bg; echo done", timeout=20)
    assert result.exit_code == 0
    assert "done" in result.output
    assert time.monotonic() - started < 3
    assert await wait_dead(await wait_for_pids(worktree / "bg", 1))


async def test_kill_stops_every_process_of_the_group(sandbox: HostSandbox, worktree: Path) -> None:
    task = asyncio.create_task(
        sandbox.exec("sleep 60 & echo $! >> pids; sleep 60 & echo $! >> pids; wait", timeout=60)
    )
    pids = await wait_for_pids(worktree / "pids", 2)
    await sandbox.kill()
    result = await asyncio.wait_for(task, 5)
    assert result.exit_code != 0
    assert await wait_dead(pids)


async def test_cancelling_exec_kills_the_group(sandbox: HostSandbox, worktree: Path) -> None:
    task = asyncio.create_task(sandbox.exec("sleep 60 & echo $! > pids; wait", timeout=60))
    pids = await wait_for_pids(worktree / "pids", 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_dead(pids, within=1.0)


async def test_close_is_idempotent_and_final(worktree: Path, tmp_path: Path) -> None:
    box = await HostSandboxFactory(tmp_root=tmp_path).create(SandboxSpec("a", "t", worktree))
    await box.close()
    await box.close()
    with pytest.raises(SandboxError, match="closed"):
        await box.exec("true", timeout=1)


async def test_paths_are_confined(sandbox: HostSandbox, worktree: Path) -> None:
    os.symlink("/etc", worktree / "etc")
    for path in ("../x", "/etc/passwd", "etc/passwd", "src/../../x"):
        with pytest.raises(SandboxPathError):
            await sandbox.read_file(path, max_bytes=10)
        with pytest.raises(SandboxPathError):
            await sandbox.write_file(path, b"x")
    assert await sandbox.read_file("src/../app.py", max_bytes=3) == b"def"


async def test_missing_worktree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="does not exist"):
        await HostSandboxFactory().create(SandboxSpec("a", "t", tmp_path / "missing"))
