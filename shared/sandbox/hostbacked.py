"""What the two host-process backends (``none`` and ``bwrap``) have in common.

Both run each command as a host process group (``processes.ProcessGroups``) and do the
file tools on the worktree itself (``hostfiles.WorktreeFiles``); they differ only in
the command line that runs a command (bare ``sh -c``, or ``bwrap ... sh -c``), its
working directory and environment, and what ``close`` releases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from shared.sandbox.base import (
    DirEntry,
    ExecResult,
    SandboxError,
    SandboxSpec,
    SandboxUnavailableError,
)
from shared.sandbox.hostfiles import WorktreeFiles
from shared.sandbox.processes import ProcessGroups
from shared.sandbox.procgroups import ProcessGroupRegistry


def check_host_spec(spec: SandboxSpec, kind: str) -> None:
    """Refuse what a host-process backend cannot honour: an environment image (the host's
    tools are the environment) or a worktree that does not exist."""
    if spec.image is not None:
        raise SandboxUnavailableError(
            f"the repository declares an environment image ({spec.image}); that needs the "
            f"docker sandbox ({kind} runs on the host's tools): install Docker and set "
            "MOSAIC_SANDBOX=docker or auto"
        )
    if not spec.worktree.is_dir():
        raise SandboxError(f"worktree does not exist: {spec.worktree}")


class HostBackedSandbox:
    """The Sandbox contract over host processes; subclasses say how a command runs."""

    kind: str

    def __init__(
        self,
        spec: SandboxSpec,
        groups: ProcessGroupRegistry | None = None,
        join: Callable[[], None] | None = None,
        *,
        die_with_parent: bool = False,
    ) -> None:
        self.spec = spec
        self._files = WorktreeFiles(spec.worktree, spec.limits, writable=spec.writable)
        self._processes = ProcessGroups(
            spec.agent_id, groups, join, die_with_parent=die_with_parent
        )
        self._closed = False

    @property
    def root(self) -> Path:
        """The worktree's real path on the host."""
        return self._files.root

    @property
    def live_groups(self) -> frozenset[int]:
        """Process groups of the commands running now (what a kill or the killswitch ends)."""
        return self._processes.live

    def argv(self, command: str) -> list[str]:
        """The host command line that runs ``command``."""
        raise NotImplementedError

    def _launch(self) -> tuple[Path | None, Mapping[str, str]]:
        """The working directory and environment the host process starts with."""
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError(f"sandbox of agent {self.spec.agent_id} is closed")

    async def exec(self, command: str, *, timeout: float, max_output: int = 64_000) -> ExecResult:
        """Run ``command`` with ``/bin/sh -c``; everything it started dies with it."""
        self._check_open()
        cwd, env = self._launch()
        argv: Sequence[str] = self.argv(command)
        return await self._processes.run(
            argv,
            cwd=cwd,
            env=env,
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
        """SIGKILL every running command's group (and any being started)."""
        self.kill_now()

    def kill_now(self) -> None:
        """``kill``, synchronously: signals only, nothing to wait for."""
        self._processes.kill()

    async def close(self) -> None:
        """Kill everything and release what the backend holds; safe to call twice."""
        await self.kill()
        if not self._closed:
            self._closed = True
            await self._release()
            await self._processes.forget_all()

    async def _release(self) -> None:
        """What ``close`` frees beyond the processes (nothing by default)."""
