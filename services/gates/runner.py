"""Where gate commands run: the ``CommandRunner`` contract and the ``local`` runner.

A runner executes one shell command against a worktree within a time limit and returns
its exit code and output; it never raises for a non-zero exit. Every runner gives a
command a private temp directory and points the tools' caches there (coverage data,
mypy and ruff caches, bytecode, pytest's cache), so a gate leaves no files behind in
the worktree. The ``local`` runner is NOT isolation (a process group per command with
rlimits and a scrubbed environment, as the spawner's local sandbox); the ``docker``
runner (docker_runner.py) is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOOL_MISSING_EXIT = 127
TOOL_MISSING_MARK = "mosaic-gates: tool not installed: "
_DRAIN_GRACE_S = 0.5


@dataclass(frozen=True)
class RunLimits:
    """Bounds of one gate command."""

    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 512
    file_size_mb: int = 512


@dataclass(frozen=True)
class RunResult:
    """A finished gate command: stdout and stderr interleaved, maybe truncated."""

    exit_code: int
    output: str
    duration_ms: int
    timed_out: bool = False
    truncated: bool = False


class CommandRunner(Protocol):
    """Runs gate commands; ``kind`` names it in logs and results."""

    kind: str

    async def run(
        self, command: str, worktree: Path, *, timeout: float, writable: bool, max_output: int
    ) -> RunResult:
        """Run ``sh -c command`` in ``worktree``; never raises for a failing command."""
        ...


def cache_env(tmp: str) -> dict[str, str]:
    """Environment that sends the usual tools' caches and data files to ``tmp``."""
    return {
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "CI": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
        "COVERAGE_FILE": f"{tmp}/.coverage",
        "MYPY_CACHE_DIR": f"{tmp}/.mypy_cache",
        "RUFF_CACHE_DIR": f"{tmp}/.ruff_cache",
        "PYTEST_ADDOPTS": "-p no:cacheprovider",
        "npm_config_cache": f"{tmp}/.npm",
        "npm_config_update_notifier": "false",
    }


def guarded(command: str, tool: str) -> str:
    """``command``, preceded by a check that ``tool`` is installed where it runs.

    A missing tool exits ``TOOL_MISSING_EXIT`` after printing ``TOOL_MISSING_MARK``, so
    the gate is reported as skipped, not failed.
    """
    if not tool:
        return command
    quoted = "'" + tool.replace("'", "'\\''") + "'"
    return (
        f"if ! command -v {quoted} >/dev/null 2>&1; then "
        f"echo '{TOOL_MISSING_MARK}'{quoted}; exit {TOOL_MISSING_EXIT}; fi\n{command}"
    )


def tool_path(extra: str, own_tools: bool) -> str:
    """``PATH`` for local gate commands: configured dirs, Mosaic's own bin, the host's."""
    parts = [p for p in extra.split(os.pathsep) if p]
    if own_tools:
        parts.append(str(Path(sys.executable).parent))
    parts.extend(p for p in os.environ.get("PATH", DEFAULT_PATH).split(os.pathsep) if p)
    return os.pathsep.join(dict.fromkeys(parts))


def _rlimits(limits: RunLimits, cpu_seconds: int) -> Callable[[], None]:
    memory = limits.memory_mb << 20
    file_size = limits.file_size_mb << 20

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class LocalRunner:
    """Gate commands as local processes: their own group, rlimits, scrubbed environment.

    Not isolation, and ``writable=False`` is not enforced here: only the caches are
    redirected. Use the docker runner for untrusted code.
    """

    kind = "local"

    def __init__(self, path: str, limits: RunLimits | None = None) -> None:
        self._path = path
        self._limits = limits or RunLimits()

    async def run(
        self, command: str, worktree: Path, *, timeout: float, writable: bool, max_output: int
    ) -> RunResult:
        """Run ``/bin/sh -c command`` in ``worktree``; its whole group dies with it."""
        tmp = tempfile.mkdtemp(prefix="mosaic-gate-")
        env = {**cache_env(tmp), "PATH": self._path}
        started = time.monotonic()
        try:
            return await self._run(command, worktree, env, timeout, max_output, started)
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def _run(
        self,
        command: str,
        worktree: Path,
        env: dict[str, str],
        timeout: float,
        max_output: int,
        started: float,
    ) -> RunResult:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=worktree,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_rlimits(self._limits, int(timeout) + 5),
        )
        chunks: list[bytes] = []
        kept = 0
        truncated = False

        async def read_all() -> None:
            nonlocal kept, truncated
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(65_536):
                room = max_output - kept
                if len(chunk) > room:
                    truncated = True
                    chunk = chunk[:room]
                if chunk:
                    chunks.append(chunk)
                    kept += len(chunk)

        reader = asyncio.create_task(read_all())
        timed_out = False
        try:
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(reader), _DRAIN_GRACE_S)
            except TimeoutError:
                timed_out = True
        finally:
            _killpg(proc.pid)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if proc.returncode is None:
                await asyncio.shield(proc.wait())
        code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        return RunResult(
            exit_code=code,
            output=b"".join(chunks).decode("utf-8", errors="replace"),
            duration_ms=int((time.monotonic() - started) * 1000),
            timed_out=timed_out,
            truncated=truncated,
        )
