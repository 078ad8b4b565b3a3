"""What each tool does, over any ``Sandbox``: each returns ``(text for the model, is_error)``.

Only the ``Sandbox`` protocol is used, so the same code works in a container and in a
local process group; the sandbox enforces worktree confinement, and these functions add
the lexical check first so an escaping path is refused before anything runs.
"""

from __future__ import annotations

import shlex

from shared.sandbox.base import ExecResult, Sandbox, SandboxError
from shared.sandbox.paths import check_relative

MAX_LIST_ENTRIES = 1000
MAX_FILE_BYTES = 8 * 1024 * 1024
"""Largest file read whole (for line ranges and edits); beyond it, read is cut short."""
MAX_SHOWN_CHARS = 100_000
MAX_SHOWN_LINES = 2000
MAX_LINE_CHARS = 2000
MAX_COMMAND_OUTPUT = 30_000
MAX_SEARCH_LINES = 200
SEARCH_TIMEOUT_S = 30.0
_SNIFF = 8192

Outcome = tuple[str, bool]


def _is_binary(data: bytes) -> bool:
    head = data[:_SNIFF]
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is still text.
        return exc.start < len(head) - 4
    return False


async def _read_whole(sandbox: Sandbox, path: str) -> tuple[bytes, bool]:
    data = await sandbox.read_file(path, max_bytes=MAX_FILE_BYTES + 1)
    return data[:MAX_FILE_BYTES], len(data) > MAX_FILE_BYTES


async def list_files(sandbox: Sandbox, path: str) -> Outcome:
    """One level of a directory: ``name/`` for directories, ``name (N bytes)`` for files."""
    rel = str(check_relative(path))
    entries = await sandbox.list_dir(rel)
    lines = [f"{e.name}/" if e.is_dir else f"{e.name} ({e.size} bytes)" for e in entries]
    note = ""
    if len(lines) > MAX_LIST_ENTRIES:
        note = f"\n[truncated: showing {MAX_LIST_ENTRIES} of {len(lines)} entries]"
        lines = lines[:MAX_LIST_ENTRIES]
    if not lines:
        return f"{rel}: empty directory", False
    return "\n".join(lines) + note, False


async def read_file(sandbox: Sandbox, path: str, start: int | None, end: int | None) -> Outcome:
    """Numbered lines of a text file, a range of them, or a note that it is binary."""
    rel = str(check_relative(path))
    data, cut = await _read_whole(sandbox, rel)
    if _is_binary(data):
        how_big = f"more than {MAX_FILE_BYTES}" if cut else str(len(data))
        return f"{rel} is a binary file ({how_big} bytes); not shown", False
    lines = data.decode("utf-8", errors="replace").splitlines()
    total = len(lines)
    first = start or 1
    last = min(end or total, total)
    if end is not None and start is not None and end < start:
        return f"end_line ({end}) is before start_line ({start})", True
    if total == 0:
        return f"{rel} is empty", False
    if first > total:
        return f"start_line {first} is past the end of {rel} ({total} lines)", True
    shown: list[str] = []
    size = 0
    notes = []
    for number in range(first, last + 1):
        text = lines[number - 1]
        if len(text) > MAX_LINE_CHARS:
            text = f"{text[:MAX_LINE_CHARS]} [line truncated: {len(text)} characters]"
        line = f"{number:6}\t{text}"
        if len(shown) >= MAX_SHOWN_LINES or size + len(line) > MAX_SHOWN_CHARS:
            notes.append(
                f"[truncated: showed lines {first}-{number - 1} of {total}; "
                f"use start_line/end_line to read more]"
            )
            break
        shown.append(line)
        size += len(line) + 1
    if cut:
        notes.append(
            f"[file is larger than {MAX_FILE_BYTES} bytes; only its beginning can be read]"
        )
    return "\n".join(shown + notes), False


async def write_file(sandbox: Sandbox, path: str, content: str) -> Outcome:
    """Write ``content`` whole."""
    rel = str(check_relative(path))
    if rel == ".":
        return "write_file needs a file path", True
    data = content.encode("utf-8")
    await sandbox.write_file(rel, data)
    return f"wrote {rel} ({len(data)} bytes)", False


async def edit_file(sandbox: Sandbox, path: str, old: str, new: str) -> Outcome:
    """Exact, unique string replacement; absent or ambiguous ``old`` is an error."""
    rel = str(check_relative(path))
    data, cut = await _read_whole(sandbox, rel)
    if cut:
        return f"{rel} is too large to edit (over {MAX_FILE_BYTES} bytes)", True
    if _is_binary(data):
        return f"{rel} is a binary file; edit_file works on text", True
    text = data.decode("utf-8")
    count = text.count(old)
    if count == 0:
        return f"old text not found in {rel}; read the file and copy the text exactly", True
    if count > 1:
        return (
            f"old text occurs {count} times in {rel}; "
            "include more surrounding lines to make it unique",
            True,
        )
    at = text.index(old)
    first_line = text.count("\n", 0, at) + 1
    updated = text.replace(old, new, 1)
    await sandbox.write_file(rel, updated.encode("utf-8"))
    last_line = first_line + new.count("\n")
    return f"edited {rel}: replaced 1 occurrence (now lines {first_line}-{last_line})", False


async def _ensure_exists(sandbox: Sandbox, rel: str) -> None:
    """Let the sandbox check confinement (symlinks included) before grep sees the path."""
    try:
        await sandbox.list_dir(rel)
    except SandboxError as exc:
        if exc.code in ("path_escape", "sandbox_gone"):
            raise
        await sandbox.read_file(rel, max_bytes=1)


async def search(sandbox: Sandbox, pattern: str, path: str) -> Outcome:
    """``grep -rnIE`` inside the sandbox; binary files and ``.git`` skipped."""
    rel = str(check_relative(path))
    await _ensure_exists(sandbox, rel)
    command = (
        "grep -rnIE --exclude-dir=.git --color=never "
        f"-e {shlex.quote(pattern)} -- {shlex.quote(rel)}"
    )
    result = await sandbox.exec(command, timeout=SEARCH_TIMEOUT_S, max_output=MAX_COMMAND_OUTPUT)
    if result.timed_out:
        return f"search timed out after {SEARCH_TIMEOUT_S:.0f}s; narrow the path or pattern", True
    if result.exit_code == 1:
        return f"no matches for {pattern!r} in {rel}", False
    if result.exit_code != 0:
        return f"search failed: {result.output.strip()[:500]}", True
    lines = result.output.splitlines()
    note = ""
    if len(lines) > MAX_SEARCH_LINES or result.truncated:
        lines = lines[:MAX_SEARCH_LINES]
        note = f"\n[truncated: first {len(lines)} matches shown; narrow the search]"
    lines = [line[2:] if line.startswith("./") else line for line in lines]
    return "\n".join(line[:500] for line in lines) + note, False


def describe(result: ExecResult, timeout: float) -> str:
    """The command's result as the model reads it: exit code, then output, then notes."""
    parts = []
    if result.timed_out:
        parts.append(f"command timed out after {timeout:g}s and was killed")
    else:
        parts.append(f"exit code: {result.exit_code}")
    parts.append(result.output.rstrip("\n") if result.output else "(no output)")
    if result.truncated:
        parts.append(f"[output truncated to {MAX_COMMAND_OUTPUT} bytes]")
    return "\n".join(parts)


async def run_command(sandbox: Sandbox, command: str, limit_s: float) -> Outcome:
    """A shell command with a time limit; a non-zero exit or timeout is an error result."""
    result = await sandbox.exec(command, timeout=limit_s, max_output=MAX_COMMAND_OUTPUT)
    return describe(result, limit_s), result.timed_out or result.exit_code != 0
