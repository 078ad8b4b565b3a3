"""File tools done by the spawner on the worktree itself, confined to it.

For backends whose commands see the very files the spawner sees (``none`` runs on the
host; ``bwrap`` binds the worktree into its namespace), reading, writing and listing
need no trip into the sandbox: the spawner does them with ``paths.resolve_inside``
(symlinks resolved, anything pointing out of the worktree refused) and ``O_NOFOLLOW``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from shared.sandbox.base import DirEntry, Limits, SandboxError
from shared.sandbox.paths import resolve_inside


class WorktreeFiles:
    """``read_file``/``write_file``/``list_dir`` of the Sandbox contract on a host path."""

    def __init__(self, root: Path, limits: Limits, *, writable: bool = True) -> None:
        self.root = root.resolve(strict=True)
        self._limits = limits
        self._writable = writable

    async def read(self, path: str, *, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of a regular file inside the worktree."""
        target = resolve_inside(self.root, path)

        def read() -> bytes:
            if not target.exists():
                raise SandboxError(f"no such file: {path}")
            if target.is_dir():
                raise SandboxError(f"is a directory, not a file: {path}")
            with target.open("rb") as handle:
                return handle.read(max_bytes)

        return await asyncio.to_thread(read)

    async def write(self, path: str, data: bytes) -> None:
        """Create or replace a file (parents created), within the file size limit."""
        if not self._writable:
            raise SandboxError("the worktree is read-only in this sandbox")
        limit = self._limits.file_size_mb * 1024 * 1024
        if len(data) > limit:
            raise SandboxError(f"file too large: {len(data)} bytes > limit {limit} bytes")
        target = resolve_inside(self.root, path)
        if target == self.root:
            raise SandboxError("cannot write to the worktree root")

        def write() -> None:
            if target.is_dir():
                raise SandboxError(f"is a directory, not a file: {path}")
            target.parent.mkdir(parents=True, exist_ok=True)
            # The parent may have been swapped for a link meanwhile: check again.
            resolve_inside(self.root, path)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)

        await asyncio.to_thread(write)

    async def list(self, path: str) -> list[DirEntry]:
        """Entries of a directory inside the worktree, sorted by name; links not followed."""
        target = resolve_inside(self.root, path)

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
