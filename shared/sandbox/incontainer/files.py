"""File operations confined to /workspace, run inside the container as the sandbox user.

argv: operation (read | write | list), a path relative to the worktree, and for read the
most bytes to return. Exit 3 means the path escapes the worktree (lexically or through a
symlink), 4 any other refusal; the message is on stderr. Resolving paths here, inside
the container, is what makes a symlink the agent planted point at the container's
files rather than the host's.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from typing import NoReturn

ROOT = "/workspace"
ESCAPES = 3
REFUSED = 4


def fail(code: int, message: str) -> NoReturn:
    sys.stderr.write(message)
    sys.exit(code)


def inside(path: str) -> bool:
    return path == ROOT or path.startswith(ROOT + "/")


def resolve(rel: str) -> str:
    """The real path of ``rel`` under the worktree, or exit 3 when it leaves it."""
    lexical = os.path.normpath(os.path.join(ROOT, rel))
    if os.path.isabs(rel) or not inside(lexical):
        fail(ESCAPES, "path escapes the worktree: " + rel)
    real = os.path.realpath(lexical)
    if not inside(real):
        fail(ESCAPES, "path escapes the worktree (through a symlink): " + rel)
    return real


def read(real: str, rel: str, limit: int) -> None:
    if not os.path.lexists(real):
        fail(REFUSED, "no such file: " + rel)
    if os.path.isdir(real):
        fail(REFUSED, "is a directory, not a file: " + rel)
    fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        sys.stdout.buffer.write(handle.read(limit))


def write(real: str, rel: str) -> None:
    if real == ROOT:
        fail(REFUSED, "cannot write to the worktree root")
    if os.path.isdir(real):
        fail(REFUSED, "is a directory, not a file: " + rel)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    if not inside(os.path.realpath(os.path.dirname(real))):
        fail(ESCAPES, "path escapes the worktree (through a symlink): " + rel)
    data = sys.stdin.buffer.read()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(real, flags, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def listing(real: str, rel: str) -> None:
    if not os.path.exists(real):
        fail(REFUSED, "no such directory: " + rel)
    if not os.path.isdir(real):
        fail(REFUSED, "not a directory: " + rel)
    entries = []
    for entry in os.scandir(real):
        info = entry.stat(follow_symlinks=False)
        entries.append([entry.name, stat.S_ISDIR(info.st_mode), info.st_size])
    json.dump(sorted(entries), sys.stdout)


def main() -> None:
    op, rel = sys.argv[1], sys.argv[2]
    real = resolve(rel)
    if op == "read":
        read(real, rel, int(sys.argv[3]))
    elif op == "write":
        write(real, rel)
    elif op == "list":
        listing(real, rel)
    else:
        fail(REFUSED, "unknown operation: " + op)


if __name__ == "__main__":
    main()
