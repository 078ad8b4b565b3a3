"""The ``none`` backend (``MOSAIC_SANDBOX=none``): bare host processes, no sandbox.

This is NOT isolation. Commands run as the spawner's user on the spawner's host, can
read anything that user can read and can use the network whatever ``SandboxSpec.network``
says. What it does give: a scrubbed environment (no API keys or other secrets inherited,
``shared.sandbox.envvars``), ``HOME`` in a private temp dir, rlimits on address space,
CPU time, file size and processes, file tools confined to the worktree (symlinks
resolved), and every process of a command killed as a group on timeout, cancellation,
``kill()`` and ``close()`` (``shared.sandbox.processes``), with each live group recorded
for the killswitch when a ``ProcessGroupRegistry`` is given. A ``setsid`` child leaves
the group and survives: only ``bwrap`` and ``docker`` end everything. It runs only
when named; use ``bwrap`` or ``docker`` for anything untrusted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from pathlib import Path

from shared.sandbox.base import DirEntry, ExecResult, SandboxError, SandboxSpec
from shared.sandbox.envvars import DEFAULT_PATH, sandbox_env
from shared.sandbox.hostfiles import WorktreeFiles
from shared.sandbox.processes import ProcessGroups
from shared.sandbox.procgroups import ProcessGroupRegistry

logger = logging.getLogger(__name__)


class HostSandbox:
    """One agent's process-group sandbox on its worktree (see the module docstring)."""

    kind = "none"

    def __init__(
        self, spec: SandboxSpec, home: Path, groups: ProcessGroupRegistry | None = None
    ) -> None:
        self.spec = spec
        self._files = WorktreeFiles(spec.worktree, spec.limits, writable=spec.writable)
        self._root = self._files.root
        self._home = home
        self._processes = ProcessGroups(spec.agent_id, groups)
        self._closed = False
        self.env = sandbox_env(
            {
                "PATH": os.environ.get("PATH", DEFAULT_PATH),
                "HOME": str(home),
                "TMPDIR": str(home / "tmp"),
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                "TERM": "dumb",
                "MOSAIC_AGENT_ID": spec.agent_id,
                "MOSAIC_TASK_ID": spec.task_id,
            },
            spec.env,
        )

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
        return await self._processes.run(
            ["/bin/sh", "-c", command],
            cwd=self._root,
            env=self.env,
            limits=self.spec.limits,
            timeout=timeout,
            max_output=max_output,
        )

    async def read_file(self, path: str, *, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of a regular file inside the worktree."""
        self._check_open()
        return await self._files.read(path, max_bytes=max_bytes)

    async def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file (parents created), within the file size limit."""
        self._check_open()
        await self._files.write(path, data)

    async def list_dir(self, path: str) -> list[DirEntry]:
        """Entries of a directory inside the worktree, sorted by name; links not followed."""
        self._check_open()
        return await self._files.list(path)

    async def kill(self) -> None:
        """SIGKILL every running command's process group (and any being started)."""
        self._processes.kill()

    async def close(self) -> None:
        """Kill everything and remove the private home; safe to call twice."""
        await self.kill()
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(shutil.rmtree, self._home, True)
            await self._processes.forget_all()


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
        try:
            box = HostSandbox(spec, home, self.groups)
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        logger.warning(
            "MOSAIC_SANDBOX=none is not isolation: agent commands run as this user on this host",
            extra={"agent_id": spec.agent_id, "task_id": spec.task_id},
        )
        return box
