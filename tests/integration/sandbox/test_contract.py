"""The Sandbox contract for the process backends (``none`` and ``bwrap``), each test run
on both: rlimits, a scrubbed environment, whole command trees killed, paths confined."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from shared.sandbox.base import (
    Limits,
    SandboxError,
    SandboxPathError,
    SandboxSpec,
    SandboxUnavailableError,
)

from .conftest import WORKDIR, MakeBox, factory_for, none_marked, wait_marked
from .gitwork import GIT_WORKOUT

pytestmark = pytest.mark.integration


def sleeper(marker: str, seconds: int = 60) -> str:
    """A command line for a child that sleeps and carries ``marker`` in its argv."""
    return f"sh -c 'sleep {seconds}; :' {marker}"


async def test_env_is_scrubbed(make_box: MakeBox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-should-not-leak")
    monkeypatch.setenv("CLAUDE_API_KEY", "sk-ant-should-not-leak-either")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    box = await make_box()
    result = await box.exec('env; test -d "$HOME" && test -w "$HOME" && echo home-ok', timeout=5)
    assert result.exit_code == 0
    names = {line.split("=", 1)[0] for line in result.output.splitlines()}
    assert "sk-ant" not in result.output
    assert not names & {"ANTHROPIC_API_KEY", "CLAUDE_API_KEY", "AWS_SECRET_ACCESS_KEY"}
    assert {"PATH", "HOME", "LANG", "MOSAIC_AGENT_ID", "MOSAIC_TASK_ID"} <= names
    assert "home-ok" in result.output
    assert f"HOME={Path.home()}\n" not in result.output


async def test_declared_env_is_added_and_secrets_refused(make_box: MakeBox) -> None:
    box = await make_box(env=(("PIP_DISABLE_PIP_VERSION_CHECK", "1"),))
    result = await box.exec("echo $PIP_DISABLE_PIP_VERSION_CHECK", timeout=5)
    assert result.output.strip() == "1"
    for name in ("GITHUB_TOKEN", "OPENAI_API_KEY", "HOME", "MOSAIC_AGENT_ID"):
        with pytest.raises(SandboxError, match=name):
            await make_box(env=((name, "x"),))


async def test_runs_in_the_worktree(make_box: MakeBox, kind: str, worktree: Path) -> None:
    box = await make_box()
    result = await box.exec("pwd && ls", timeout=5)
    assert result.output.splitlines()[0] == WORKDIR.get(kind, str(worktree.resolve()))
    assert "app.py" in result.output


async def test_file_size_limit_applies(make_box: MakeBox, worktree: Path) -> None:
    box = await make_box(limits=Limits(file_size_mb=1))
    result = await box.exec("head -c 3000000 /dev/zero > big.bin", timeout=10)
    assert result.exit_code != 0
    assert (worktree / "big.bin").stat().st_size <= 1024 * 1024
    with pytest.raises(SandboxError, match="file too large"):
        await box.write_file("big2.bin", b"0" * (2 * 1024 * 1024))


async def test_rlimits_are_set_in_the_child(make_box: MakeBox) -> None:
    box = await make_box(limits=Limits(memory_mb=512, cpu_seconds=7, file_size_mb=3))
    result = await box.exec("ulimit -t; ulimit -f; ulimit -v; ulimit -c", timeout=5)
    cpu, fsize, vmem, core = result.output.split()
    assert cpu == "7"
    assert int(fsize) * 512 in (3 * 1024 * 1024, 3 * 1024 * 1024 * 2)  # 512 B or 1 KiB blocks
    assert int(vmem) == 512 * 1024
    assert core == "0"


async def test_timeout_kills_the_whole_tree(make_box: MakeBox) -> None:
    box = await make_box()
    marker = f"mosaic-timeout-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    result = await box.exec(f"{sleeper(marker)} & {sleeper(marker)}", timeout=0.5)
    assert result.timed_out
    assert time.monotonic() - started < 3
    assert await none_marked(marker)


async def test_background_children_do_not_hold_exec(make_box: MakeBox) -> None:
    box = await make_box()
    marker = f"mosaic-bg-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    result = await box.exec(f"{sleeper(marker)} & echo done", timeout=20)
    assert result.exit_code == 0
    assert "done" in result.output
    assert time.monotonic() - started < 3
    assert await none_marked(marker)


async def test_kill_stops_every_process(make_box: MakeBox) -> None:
    box = await make_box()
    marker = f"mosaic-kill-{uuid.uuid4().hex[:8]}"
    task = asyncio.create_task(
        box.exec(f"{sleeper(marker)} & {sleeper(marker)} & wait", timeout=60)
    )
    await wait_marked(marker, 2)
    await box.kill()
    result = await asyncio.wait_for(task, 5)
    assert result.exit_code != 0
    assert await none_marked(marker)


async def test_kill_now_from_synchronous_code_stops_every_process(make_box: MakeBox) -> None:
    """What a kill order's callback does for every agent before any run unwinds: no
    await, and the commands end; the run's own ``kill`` after it is harmless."""
    box = await make_box()
    marker = f"mosaic-killnow-{uuid.uuid4().hex[:8]}"
    task = asyncio.create_task(
        box.exec(f"{sleeper(marker)} & {sleeper(marker)} & wait", timeout=60)
    )
    await wait_marked(marker, 2)
    box.kill_now()
    result = await asyncio.wait_for(task, 5)
    assert result.exit_code != 0
    assert await none_marked(marker)
    await box.kill()
    assert (await box.exec("echo after", timeout=10)).output.strip() == "after"


async def test_cancelling_exec_kills_the_tree(make_box: MakeBox) -> None:
    box = await make_box()
    marker = f"mosaic-cancel-{uuid.uuid4().hex[:8]}"
    task = asyncio.create_task(box.exec(f"{sleeper(marker)} & wait", timeout=60))
    await wait_marked(marker, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await none_marked(marker, within=2.0)


async def test_close_is_idempotent_and_final(make_box: MakeBox) -> None:
    box = await make_box()
    await box.close()
    await box.close()
    with pytest.raises(SandboxError, match="closed"):
        await box.exec("true", timeout=1)


async def test_paths_are_confined(make_box: MakeBox, worktree: Path) -> None:
    box = await make_box()
    os.symlink("/etc", worktree / "etc")
    for path in ("../x", "/etc/passwd", "etc/passwd", "src/../../x"):
        with pytest.raises(SandboxPathError):
            await box.read_file(path, max_bytes=10)
        with pytest.raises(SandboxPathError):
            await box.write_file(path, b"x")
    assert await box.read_file("src/../app.py", max_bytes=3) == b"def"
    await box.write_file("new/dir/file.txt", b"hello")
    assert [e.name for e in await box.list_dir("new/dir")] == ["file.txt"]
    assert (await box.exec("cat new/dir/file.txt", timeout=5)).output == "hello"


async def test_git_works_on_the_agents_own_repository(
    make_box: MakeBox, kind: str, worktree: Path
) -> None:
    """Issue 17: status, diff, log, add, commit, rebase (conflict, resolve, continue),
    merge, cherry-pick and stash, in the sandbox, on the agent's own repository."""
    box = await make_box()
    done = await box.exec(GIT_WORKOUT, timeout=120)
    assert done.exit_code == 0, done.output
    assert "GIT-WORKS" in done.output
    assert "Mosaic Test <mosaic@test.invalid>" in done.output  # the configured identity
    assert "agent line" in (worktree / "app.py").read_text()


async def test_read_only_worktree(make_box: MakeBox, kind: str, worktree: Path) -> None:
    box = await make_box(writable=False)
    with pytest.raises(SandboxError, match="read-only"):
        await box.write_file("x.txt", b"x")
    result = await box.exec("cat app.py && touch y.txt", timeout=5)
    assert "def add" in result.output
    if kind != "none":  # bare host processes cannot be stopped from writing
        assert result.exit_code != 0
        assert not (worktree / "y.txt").exists()


async def test_missing_worktree_is_refused(kind: str, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="does not exist"):
        await factory_for(kind, tmp_path).create(SandboxSpec("a", "t", tmp_path / "missing"))


async def test_a_declared_environment_image_needs_docker(kind: str, tmp_path: Path) -> None:
    spec = SandboxSpec("a", "t", tmp_path, image="mosaic-env/demo:abc")
    with pytest.raises(SandboxUnavailableError, match="needs the docker sandbox"):
        await factory_for(kind, tmp_path).create(spec)
