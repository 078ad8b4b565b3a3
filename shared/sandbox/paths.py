"""Path confinement shared by the sandboxes: a tool path must stay inside the worktree.

Two steps: a lexical check that works for any sandbox (no absolute paths, no ``..``
climbing out, no NUL), then, where the filesystem is visible to the spawner, a resolved
check that follows symlinks (a link pointing out, a symlinked directory) and refuses
anything whose real location is not under the worktree's real location.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from shared.sandbox.base import SandboxPathError

MAX_PATH_LENGTH = 4096


def check_relative(path: str) -> PurePosixPath:
    """The normalised worktree-relative form of ``path``, or ``SandboxPathError``.

    ``"."`` and ``""`` mean the worktree root. ``a/../b`` is fine; ``../b`` is not.
    """
    if "\x00" in path:
        raise SandboxPathError(f"path contains a NUL byte: {path!r}")
    if len(path) > MAX_PATH_LENGTH:
        raise SandboxPathError("path is too long")
    raw = path.strip() or "."
    if raw.startswith(("/", "~")) or PurePosixPath(raw).is_absolute():
        raise SandboxPathError(
            f"absolute paths are not allowed (use a path relative to the worktree): {path}"
        )
    parts: list[str] = []
    for part in PurePosixPath(raw).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise SandboxPathError(f"path escapes the worktree: {path}")
            parts.pop()
            continue
        parts.append(part)
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def resolve_inside(root: Path, path: str) -> Path:
    """The real location of ``path`` under ``root``, refusing anything that leaves it.

    Symlinks are followed (including a dangling final link, which would create a file
    where it points), so a link to ``/etc`` or a symlinked directory leading out is
    refused even though the path itself looks harmless.
    """
    relative = check_relative(path)
    real_root = root.resolve(strict=True)
    candidate = real_root / relative
    resolved = Path(os.path.realpath(candidate))
    if resolved != real_root and not resolved.is_relative_to(real_root):
        raise SandboxPathError(f"path escapes the worktree (through a symlink): {path}")
    return resolved


def display(path: str) -> str:
    """A path as shown back to the model: normalised and relative, or as given if invalid."""
    try:
        return str(check_relative(path))
    except SandboxPathError:
        return path
