"""The ``none`` backend (``MOSAIC_SANDBOX=none``): bare host processes, no sandbox.

Each command runs in its own process group, with rlimits.

This is NOT isolation. Commands run as the spawner's user on the spawner's host, can
read anything that user can read and can use the network whatever ``SandboxSpec.network``
says. What it does give: a scrubbed environment (no API keys or other secrets inherited),
``HOME`` in a private temp dir, rlimits on address space, CPU time, file size and
processes, file tools confined to the worktree (symlinks resolved), and every process
of a command killed as a group on timeout, cancellation, ``kill()`` and ``close()``.
With a ``ProcessGroupRegistry``, each live group is recorded in Valkey
(``<p>:agent:<agentId>:pgids``) so the killswitch can end it if the spawner hangs or dies.
Use the ``docker`` sandbox for anything untrusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from shared.sandbox.base import DirEntry, ExecResult, SandboxError, SandboxSpec
from shared.sandbox.paths import resolve_inside
from shared.sandbox.procgroups import ProcessGroupRegistry

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DRAIN_GRACE_S = 0.5
"""After the command's shell exits, how long background children may keep its output open."""


def _user_process_count() -> int:
    """Processes of this uid now; RLIMIT_NPROC counts them all, not just the sandbox's."""
    uid = os.getuid()
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid == uid:
                        count += 1
    return count


def _rlimit_setter(spec: SandboxSpec) -> Callable[[], None]:
    """A ``preexec_fn`` applying the spec's limits in the child, before ``exec``."""
    limits = spec.limits
    memory = limits.memory_mb * 1024 * 1024
    file_size = limits.file_size_mb * 1024 * 1024
    nproc = limits.pids + _user_process_count()

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Wait for the shell to exit; unlike ``proc.wait()``, not for its pipes to close
    (a background child holding stdout would otherwise hold the caller too)."""
    delay = 0.002
    while proc.returncode is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class HostSandbox:
    """One agent's process-group sandbox on its worktree (see the module docstring)."""

    kind = "none"

    def __init__(
        self, spec: SandboxSpec, home: Path, groups: ProcessGroupRegistry | None = None
    ) -> None:
        self.spec = spec
        self._registry = groups
        """Where live groups are recorded for the killswitch (``shared.sandbox.procgroups``)."""
        self._root = spec.worktree.resolve(strict=True)
        self._home = home
        self._groups: set[int] = set()
        self._kills = 0
        """Bumped by ``kill()``: a command still being spawned then dies as soon as it exists."""
        self._closed = False
        self.env = {
            "PATH": os.environ.get("PATH", DEFAULT_PATH),
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            "MOSAIC_AGENT_ID": spec.agent_id,
            "MOSAIC_TASK_ID": spec.task_id,
        }

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError(f"sandbox of agent {self.spec.agent_id} is closed")

    async def exec(
        self,
        command: str,
        *,
        timeout: float,
        max_output: int = 64_000,
    ) -> ExecResult:
        """Run ``command`` with ``/bin/sh -c`` in the worktree; the group dies with it."""
        self._check_open()
        proc = await self._spawn(command)
        pgid = proc.pid  # start_new_session: the shell leads its own group
        self._groups.add(pgid)
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
        recorded: str | None = None
        try:
            if self._registry is not None:
                with contextlib.suppress(Exception):  # a kill by the spawner still works
                    recorded = await self._registry.record(self.spec.agent_id, pgid)
            try:
                async with asyncio.timeout(timeout):
                    await _exited(proc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(reader), _DRAIN_GRACE_S)
            except TimeoutError:
                timed_out = True
        finally:
            # Normal exit, timeout or cancellation: nothing of this command outlives it.
            _killpg(pgid)
            self._groups.discard(pgid)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.shield(asyncio.wait_for(_exited(proc), 5.0))
            if recorded is not None and self._registry is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._registry.forget(self.spec.agent_id, recorded))
        output = b"".join(chunks).decode("utf-8", errors="replace")
        exit_code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        return ExecResult(
            exit_code=exit_code, output=output, timed_out=timed_out, truncated=truncated
        )

    async def _spawn(self, command: str) -> asyncio.subprocess.Process:
        """Start the shell; a cancellation while asyncio sets up its pipes still kills
        the group (the shell may already have forked children by then)."""
        starting = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                cwd=self._root,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_rlimit_setter(self.spec),
            )
        )
        generation = self._kills
        try:
            proc = await asyncio.shield(starting)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                proc = await starting
                _killpg(proc.pid)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_exited(proc), 5.0)
            raise
        if self._kills != generation:
            _killpg(proc.pid)
        return proc

    async def read_file(self, path: str, *, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of a regular file inside the worktree."""
        self._check_open()
        target = resolve_inside(self._root, path)

        def read() -> bytes:
            if not target.exists():
                raise SandboxError(f"no such file: {path}")
            if target.is_dir():
                raise SandboxError(f"is a directory, not a file: {path}")
            with target.open("rb") as handle:
                return handle.read(max_bytes)

        return await asyncio.to_thread(read)

    async def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file (parents created), within the file size limit."""
        self._check_open()
        limit = self.spec.limits.file_size_mb * 1024 * 1024
        if len(data) > limit:
            raise SandboxError(f"file too large: {len(data)} bytes > limit {limit} bytes")
        target = resolve_inside(self._root, path)
        if target == self._root:
            raise SandboxError("cannot write to the worktree root")

        def write() -> None:
            if target.is_dir():
                raise SandboxError(f"is a directory, not a file: {path}")
            target.parent.mkdir(parents=True, exist_ok=True)
            # The parent may have been swapped for a link meanwhile: check again.
            resolve_inside(self._root, path)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)

        await asyncio.to_thread(write)

    async def list_dir(self, path: str) -> list[DirEntry]:
        """Entries of a directory inside the worktree, sorted by name; links not followed."""
        self._check_open()
        target = resolve_inside(self._root, path)

        def scan() -> list[DirEntry]:
            if not target.exists():
                raise SandboxError(f"no such directory: {path}")
            if not target.is_dir():
                raise SandboxError(f"not a directory: {path}")
            entries = []
            for entry in os.scandir(target):
                info = entry.stat(follow_symlinks=False)
                entries.append(
                    DirEntry(
                        name=entry.name,
                        is_dir=entry.is_dir(follow_symlinks=False),
                        size=info.st_size,
                    )
                )
            return sorted(entries, key=lambda e: e.name)

        return await asyncio.to_thread(scan)

    async def kill(self) -> None:
        """SIGKILL every running command's process group (and any being started)."""
        self._kills += 1
        for pgid in list(self._groups):
            _killpg(pgid)

    async def close(self) -> None:
        """Kill everything and remove the private home; safe to call twice."""
        await self.kill()
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(shutil.rmtree, self._home, True)
            if self._registry is not None:
                with contextlib.suppress(Exception):
                    await self._registry.clear(self.spec.agent_id)


class HostSandboxFactory:
    """Makes ``none`` sandboxes (bare host processes); says loudly that they are not isolation."""

    kind = "none"
    unsafe = True

    def __init__(
        self, tmp_root: Path | None = None, groups: ProcessGroupRegistry | None = None
    ) -> None:
        self._tmp_root = tmp_root
        self.groups = groups
        """When set, each command's process group is recorded in Valkey while it runs."""

    async def create(self, spec: SandboxSpec) -> HostSandbox:
        """A sandbox on ``spec.worktree`` (which must exist) with a private temp home."""
        if not spec.worktree.is_dir():
            raise SandboxError(f"worktree does not exist: {spec.worktree}")
        home = Path(tempfile.mkdtemp(prefix=f"mosaic-{spec.agent_id}-", dir=self._tmp_root))
        (home / "tmp").mkdir()
        logger.warning(
            "MOSAIC_SANDBOX=none is not isolation: agent commands run as this user on this host",
            extra={"agent_id": spec.agent_id, "task_id": spec.task_id},
        )
        return HostSandbox(spec, home, self.groups)
