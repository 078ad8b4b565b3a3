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
from collections.abc import Mapping
from pathlib import Path

from shared.sandbox.base import SandboxSpec
from shared.sandbox.envvars import DEFAULT_PATH, command_env
from shared.sandbox.hostbacked import HostBackedSandbox, check_host_spec
from shared.sandbox.procgroups import ProcessGroupRegistry

logger = logging.getLogger(__name__)


class HostSandbox(HostBackedSandbox):
    """One agent's process-group sandbox on its worktree (see the module docstring)."""

    kind = "none"

    def __init__(
        self, spec: SandboxSpec, home: Path, groups: ProcessGroupRegistry | None = None
    ) -> None:
        super().__init__(spec, groups)
        self._home = home
        self.env = command_env(
            spec,
            path=os.environ.get("PATH", DEFAULT_PATH),
            home=str(home),
            tmpdir=str(home / "tmp"),
        )

    def argv(self, command: str) -> list[str]:
        """``/bin/sh -c command``, nothing around it."""
        return ["/bin/sh", "-c", command]

    def _launch(self) -> tuple[Path | None, Mapping[str, str]]:
        return self.root, self.env

    async def _release(self) -> None:
        await asyncio.to_thread(shutil.rmtree, self._home, True)


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
        check_host_spec(spec, self.kind)
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
