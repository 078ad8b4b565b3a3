"""An in-memory ``Sandbox`` for unit tests of the loop: files in a dict, scripted commands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from services.spawner.sandbox.base import DirEntry, ExecResult, SandboxError, SandboxSpec
from services.spawner.sandbox.paths import check_relative

CommandHandler = Callable[[str], ExecResult]


class MemorySandbox:
    """Files live in ``files`` (relative path -> bytes); ``exec`` answers via ``on_exec``."""

    kind = "memory"

    def __init__(
        self, files: dict[str, bytes] | None = None, on_exec: CommandHandler | None = None
    ):
        self.spec = SandboxSpec(agent_id="mem", task_id="mem", worktree=Path("/nonexistent"))
        self.files: dict[str, bytes] = dict(files or {})
        self.commands: list[str] = []
        self.on_exec = on_exec or (lambda command: ExecResult(exit_code=0, output=""))
        self.killed = False
        self.closed = False

    async def exec(self, command: str, *, timeout: float, max_output: int = 64_000) -> ExecResult:
        self.commands.append(command)
        await asyncio.sleep(0)
        return self.on_exec(command)

    async def read_file(self, path: str, *, max_bytes: int) -> bytes:
        key = str(check_relative(path))
        if key not in self.files:
            raise SandboxError(f"no such file: {path}")
        return self.files[key][:max_bytes]

    async def write_file(self, path: str, data: bytes) -> None:
        self.files[str(check_relative(path))] = data

    async def list_dir(self, path: str) -> list[DirEntry]:
        prefix = str(check_relative(path))
        prefix = "" if prefix == "." else prefix + "/"
        names: dict[str, DirEntry] = {}
        for key, data in self.files.items():
            if key.startswith(prefix):
                head, _, rest = key[len(prefix) :].partition("/")
                names[head] = DirEntry(name=head, is_dir=bool(rest), size=0 if rest else len(data))
        if not names and prefix:
            raise SandboxError(f"no such directory: {path}")
        return sorted(names.values(), key=lambda e: e.name)

    async def kill(self) -> None:
        self.killed = True

    async def close(self) -> None:
        self.killed = self.closed = True
