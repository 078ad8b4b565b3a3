"""Mechanical gates: run a gate's command and turn what it printed into a ``GateResult``.

Fail closed: a gate that cannot run (its tool is missing where it runs, nothing was
detected for it) is ``failed`` with ``not checked: <why>``; ``skipped`` is only for a
gate turned off on purpose (``.mosaic/gates.toml``, YOLO mode).
"""

from __future__ import annotations

import re

from services.gates.config import CONFIG_PATH, GateCommand
from services.gates.runner import (
    TOOL_MISSING_EXIT,
    TOOL_MISSING_MARK,
    GateRunner,
    GateTarget,
    RunResult,
    guarded,
)
from shared.messages.gates import GateResult, GateStatus

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_COVERAGE_PATTERNS = (
    re.compile(r"^TOTAL\b.*?(\d+(?:\.\d+)?)%\s*$", re.MULTILINE),  # coverage.py
    re.compile(r"^All files\s*\|\s*(\d+(?:\.\d+)?)\s*\|", re.MULTILINE),  # istanbul / c8
    re.compile(r"^Statements\s*:\s*(\d+(?:\.\d+)?)%", re.MULTILINE),  # istanbul summary
)


def trim(text: str, limit: int) -> str:
    """``text`` without colour codes, cut to about ``limit`` characters.

    Keeps the head (where the first errors are) and the longer tail (where summaries
    and the last errors are), with a marker saying how much was left out.
    """
    clean = _ANSI.sub("", text).replace("\r\n", "\n").strip()
    if len(clean) <= limit:
        return clean
    head = limit // 3
    tail = limit - head
    dropped = len(clean) - head - tail
    return f"{clean[:head]}\n[… {dropped} characters cut …]\n{clean[-tail:]}"


def coverage_figure(output: str, pattern: str | None) -> float | None:
    """The total coverage percentage printed by the coverage command, if found."""
    clean = _ANSI.sub("", output)
    patterns = (re.compile(pattern, re.MULTILINE),) if pattern else _COVERAGE_PATTERNS
    for regex in patterns:
        found = regex.findall(clean)
        if found:
            last = found[-1]
            value = last[0] if isinstance(last, tuple) else last
            try:
                return float(value)
            except ValueError:
                return None
    return None


NOT_CHECKED = "not checked: "
TURNED_OFF = f"turned off in {CONFIG_PATH}"


def skipped(name: str, reason: str) -> GateResult:
    """A gate turned off on purpose, and by what (never reported as passed)."""
    return GateResult(name=name, status="skipped", excerpt=f"skipped: {reason}")


def not_checked(name: str, reason: str, command: str | None = None) -> GateResult:
    """A gate of the profile that could not run: failed, never skipped or passed."""
    return GateResult(name=name, status="failed", excerpt=NOT_CHECKED + reason, command=command)


def _missing_tool(result: RunResult) -> str | None:
    if result.exit_code != TOOL_MISSING_EXIT:
        return None
    for line in result.output.splitlines():
        if line.startswith(TOOL_MISSING_MARK):
            return line.removeprefix(TOOL_MISSING_MARK).strip()
    return None


def _result(
    gate: GateCommand, run: RunResult, status: GateStatus, excerpt: str, figure: float | None = None
) -> GateResult:
    return GateResult(
        name=gate.name,
        status=status,
        duration_ms=run.duration_ms,
        excerpt=excerpt,
        figure=figure,
        command=gate.command,
    )


async def run_gate(
    gate: GateCommand,
    runner: GateRunner,
    target: GateTarget,
    *,
    timeout: float,
    excerpt_chars: int,
    max_output: int,
    coverage_threshold: float,
) -> GateResult:
    """Run one mechanical gate in its own sandbox; a missing tool is "not checked"."""
    limit = min(gate.timeout, timeout)
    run = await runner.run(
        guarded(gate.command, gate.tool),
        target,
        timeout=limit,
        writable=gate.writable,
        max_output=max_output,
    )
    tool = _missing_tool(run)
    if tool is not None:
        where = runner.where(target.environment)
        reason = f"{NOT_CHECKED}{tool} is not installed where the gates run ({where})"
        return _result(gate, run, "failed", reason)
    excerpt = trim(run.output, excerpt_chars)
    if run.truncated:
        excerpt += "\n[output truncated]"
    if run.timed_out:
        return _result(gate, run, "failed", f"timed out after {limit:g}s\n{excerpt}".strip())
    if gate.name == "coverage":
        return _coverage(gate, run, excerpt, coverage_threshold)
    if run.exit_code == 0:
        return _result(gate, run, "passed", excerpt)
    return _result(gate, run, "failed", f"exit code {run.exit_code}\n{excerpt}".strip())


def _coverage(gate: GateCommand, run: RunResult, excerpt: str, threshold: float) -> GateResult:
    figure = coverage_figure(run.output, gate.pattern)
    if run.exit_code != 0:
        head = f"exit code {run.exit_code}"
        if figure is not None:
            head += f" (coverage {figure:g}%)"
        return _result(gate, run, "failed", f"{head}\n{excerpt}".strip(), figure)
    if figure is None:
        why = f"no coverage total found in the output of {gate.command!r}"
        return _result(gate, run, "failed", f"{why}\n{excerpt}")
    if figure < threshold:
        why = f"coverage {figure:g}% is below the threshold of {threshold:g}%"
        return _result(gate, run, "failed", f"{why}\n{excerpt}", figure)
    return _result(
        gate, run, "passed", f"coverage {figure:g}% (threshold {threshold:g}%)\n{excerpt}", figure
    )
