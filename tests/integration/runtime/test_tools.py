"""Every tool on a real worktree through the local sandbox, escapes included."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from services.spawner.runtime import tool_handlers, tools
from services.spawner.runtime.providers.base import ToolCall, ToolResult
from shared.sandbox.host import HostSandbox

pytestmark = pytest.mark.integration


async def call(
    sandbox: HostSandbox, name: str, agent_type: str = "worker", **data: Any
) -> ToolResult:
    validated = tools.validate(ToolCall(id="t1", name=name, input=data), agent_type)  # type: ignore[arg-type]
    if isinstance(validated, str):
        return ToolResult("t1", validated, is_error=True)
    return await tools.execute(sandbox, "t1", validated, log_extra={})


async def test_list_files(sandbox: HostSandbox) -> None:
    result = await call(sandbox, "list_files", path=".")
    assert not result.is_error
    assert "src/" in result.content.splitlines()
    assert "app.py (32 bytes)" in result.content
    sub = await call(sandbox, "list_files", path="src")
    assert "util.py" in sub.content
    missing = await call(sandbox, "list_files", path="nope")
    assert missing.is_error
    assert "no such directory" in missing.content


async def test_read_file_whole_and_ranges(sandbox: HostSandbox) -> None:
    whole = await call(sandbox, "read_file", path="src/util.py")
    assert not whole.is_error
    assert "     1\tVALUE = 1" in whole.content
    assert "     5\t    return VALUE" in whole.content
    part = await call(sandbox, "read_file", path="src/util.py", start_line=4, end_line=5)
    assert part.content.splitlines() == ["     4\tdef helper():", "     5\t    return VALUE"]
    past = await call(sandbox, "read_file", path="src/util.py", start_line=50)
    assert past.is_error
    assert "past the end" in past.content


async def test_read_huge_file_is_truncated_with_a_note(
    sandbox: HostSandbox, worktree: Path
) -> None:
    (worktree / "big.txt").write_text("".join(f"line {n}\n" for n in range(1, 50_001)))
    result = await call(sandbox, "read_file", path="big.txt")
    assert not result.is_error
    assert len(result.content) < 120_000
    assert "[truncated: showed lines 1-2000 of 50000" in result.content
    tail = await call(sandbox, "read_file", path="big.txt", start_line=49_999)
    assert "line 50000" in tail.content
    (worktree / "long.txt").write_text("x" * 300_000)
    long = await call(sandbox, "read_file", path="long.txt")
    assert "[line truncated: 300000 characters]" in long.content


async def test_read_binary_file_is_reported_not_dumped(
    sandbox: HostSandbox, worktree: Path
) -> None:
    (worktree / "blob.bin").write_bytes(bytes(range(256)) * 10)
    result = await call(sandbox, "read_file", path="blob.bin")
    assert not result.is_error
    assert result.content == "blob.bin is a binary file (2560 bytes); not shown"


async def test_write_file_creates_parents(sandbox: HostSandbox, worktree: Path) -> None:
    result = await call(sandbox, "write_file", path="pkg/new/mod.py", content="X = 2\n")
    assert not result.is_error
    assert (worktree / "pkg" / "new" / "mod.py").read_text() == "X = 2\n"


async def test_edit_file_unique_absent_and_ambiguous(sandbox: HostSandbox, worktree: Path) -> None:
    done = await call(
        sandbox, "edit_file", path="app.py", old="return a + b", new="return a + b + 0"
    )
    assert not done.is_error, done.content
    assert "return a + b + 0" in (worktree / "app.py").read_text()
    absent = await call(sandbox, "edit_file", path="app.py", old="return a * b", new="x")
    assert absent.is_error
    assert "not found" in absent.content
    (worktree / "dup.py").write_text("x = 1\nx = 1\n")
    ambiguous = await call(sandbox, "edit_file", path="dup.py", old="x = 1", new="x = 2")
    assert ambiguous.is_error
    assert "occurs 2 times" in ambiguous.content
    assert (worktree / "dup.py").read_text() == "x = 1\nx = 1\n"


async def test_search_quotes_patterns_and_reports_no_match(
    sandbox: HostSandbox, worktree: Path
) -> None:
    found = await call(sandbox, "search", pattern="def (add|helper)")
    assert not found.is_error
    assert "app.py:1:def add(a, b):" in found.content
    assert "src/util.py:4:def helper():" in found.content
    (worktree / "weird.txt").write_text("it's $HOME; `rm -rf x`\n")
    tricky = await call(sandbox, "search", pattern="it's \\$HOME; `rm", path="weird.txt")
    assert "it's $HOME" in tricky.content, tricky.content
    none = await call(sandbox, "search", pattern="zzz_nothing", path="src")
    assert not none.is_error
    assert "no matches" in none.content
    bad = await call(sandbox, "search", pattern="(unclosed")
    assert bad.is_error


async def test_run_command_exit_codes_timeout_and_truncation(sandbox: HostSandbox) -> None:
    ok = await call(sandbox, "run_command", command="echo hello && pwd")
    assert not ok.is_error
    assert ok.content.startswith("exit code: 0\nhello\n")
    failing = await call(sandbox, "run_command", command="echo oops >&2; exit 3")
    assert failing.is_error
    assert "exit code: 3" in failing.content
    assert "oops" in failing.content
    slow = await call(sandbox, "run_command", command="sleep 10", timeout=0.3)
    assert slow.is_error
    assert "timed out after 0.3s" in slow.content
    loud = await call(sandbox, "run_command", command="yes 0123456789 | head -c 200000")
    assert f"[output truncated to {tool_handlers.MAX_COMMAND_OUTPUT} bytes]" in loud.content


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("read_file", {"path": "../outside/secret.txt"}),
        ("read_file", {"path": "/etc/passwd"}),
        ("write_file", {"path": "../escape.txt", "content": "x"}),
        ("write_file", {"path": "src/../../escape.txt", "content": "x"}),
        ("list_files", {"path": ".."}),
        ("edit_file", {"path": "/etc/hosts", "old": "a", "new": "b"}),
        ("search", {"pattern": "secret", "path": "../outside"}),
        ("search", {"pattern": "secret", "path": "/"}),
    ],
)
async def test_escaping_paths_are_refused(
    sandbox: HostSandbox, worktree: Path, name: str, data: dict[str, Any]
) -> None:
    result = await call(sandbox, name, **data)
    assert result.is_error
    assert "escapes the worktree" in result.content or "absolute paths" in result.content
    assert "top secret" not in result.content
    assert not (worktree.parent / "escape.txt").exists()


async def test_symlinks_out_of_the_worktree_are_refused(
    sandbox: HostSandbox, worktree: Path
) -> None:
    outside = worktree.parent / "outside"
    os.symlink(outside / "secret.txt", worktree / "link.txt")
    os.symlink(outside, worktree / "linkdir")
    os.symlink(outside / "new.txt", worktree / "dangling.txt")
    attempts = [
        ("read_file", {"path": "link.txt"}),
        ("read_file", {"path": "linkdir/secret.txt"}),
        ("list_files", {"path": "linkdir"}),
        ("write_file", {"path": "linkdir/planted.txt", "content": "x"}),
        ("write_file", {"path": "dangling.txt", "content": "x"}),
        ("edit_file", {"path": "link.txt", "old": "top", "new": "bottom"}),
        ("search", {"pattern": "secret", "path": "linkdir"}),
        ("search", {"pattern": "secret", "path": "link.txt"}),
    ]
    for name, data in attempts:
        result = await call(sandbox, name, **data)
        assert result.is_error, (name, data, result.content)
        assert "escapes the worktree" in result.content
        assert "top secret" not in result.content
    assert not (outside / "planted.txt").exists()
    assert not (outside / "new.txt").exists()
    assert (outside / "secret.txt").read_text() == "top secret\n"
    # grep -r does not follow links met while recursing, so a search of "." stays inside.
    everything = await call(sandbox, "search", pattern="top secret")
    assert everything.content == "no matches for 'top secret' in ."


async def test_symlink_inside_the_worktree_is_fine(sandbox: HostSandbox, worktree: Path) -> None:
    os.symlink(worktree / "app.py", worktree / "alias.py")
    result = await call(sandbox, "read_file", path="alias.py")
    assert not result.is_error
    assert "def add" in result.content


async def test_malformed_input_is_a_tool_error(sandbox: HostSandbox) -> None:
    missing = await call(sandbox, "write_file", path="a.txt")
    assert missing.is_error
    assert "content: Field required" in missing.content
    extra = await call(sandbox, "read_file", path="app.py", lines="1-2")
    assert "lines: Extra inputs are not permitted" in extra.content
    unknown = await call(sandbox, "delete_everything", path=".")
    assert "unknown tool 'delete_everything'" in unknown.content


async def test_reviewer_cannot_write_or_run(sandbox: HostSandbox, worktree: Path) -> None:
    for name, data in [
        ("write_file", {"path": "x.txt", "content": "x"}),
        ("edit_file", {"path": "app.py", "old": "a", "new": "b"}),
        ("run_command", {"command": "touch y.txt"}),
    ]:
        result = await call(sandbox, name, agent_type="reviewer", **data)
        assert result.is_error
        assert "not available to a reviewer agent" in result.content
    assert not (worktree / "x.txt").exists()
    assert not (worktree / "y.txt").exists()
    read = await call(sandbox, "read_file", agent_type="reviewer", path="app.py")
    assert not read.is_error
