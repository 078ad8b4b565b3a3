"""Does a pushed branch touch what a running agent is changing? (pure functions)

Both sides are ``FileChange`` lists against a base commit (services/gitops/changes.py).
Two changes overlap when they are in the same file and, when both sides have line
ranges of the same base, when a range of one overlaps or touches a range of the other:
git's merge also stops at changes to adjacent lines, so touching counts. When either
side has no ranges (binary, renamed, too many hunks) or the two bases differ (line
numbers of different commits cannot be compared), the file alone counts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from shared.messages.gitops import FileChange, LineRange, RepoPushed

MAX_FILES_SHOWN = 20


@dataclass(frozen=True)
class Overlap:
    """A file both sides change, with the pushed side's ranges that meet the agent's
    (all of them when only the file can be compared; None when it changed as a whole)."""

    path: str
    ranges: tuple[LineRange, ...] | None

    def describe(self) -> str:
        """``calc.py lines 10-14``, ``calc.py line 3 and new lines after line 9``, ``logo.png``."""
        path = shown_path(self.path)
        if not self.ranges:
            return path
        return f"{path} {' and '.join(describe_range(r) for r in self.ranges)}"


def shown_path(path: str) -> str:
    """The path as text for the note: quoted (JSON) when it holds a line break or another
    unprintable character, so a file name cannot pose as more lines of the note."""
    return path if path.isprintable() else json.dumps(path)


def ranges_meet(a: LineRange, b: LineRange) -> bool:
    """Whether two base ranges overlap or are adjacent (an insertion, the empty range
    between lines n and n+1, meets changes to either of them)."""
    return a.start <= b.end + 1 and b.start <= a.end + 1


def find_overlaps(
    theirs: Sequence[FileChange], mine: Sequence[FileChange], *, same_base: bool
) -> list[Overlap]:
    """The files of ``theirs`` (a pushed branch) that overlap ``mine`` (a running agent)."""
    by_path = {change.path: change for change in mine}
    found: list[Overlap] = []
    for change in theirs:
        other = by_path.get(change.path)
        if other is None:
            continue
        if change.ranges is None or other.ranges is None or not same_base:
            found.append(Overlap(change.path, change.ranges))
            continue
        hit = tuple(r for r in change.ranges if any(ranges_meet(r, o) for o in other.ranges))
        if hit:
            found.append(Overlap(change.path, hit))
    return found


def describe_range(line_range: LineRange) -> str:
    """``line 10``, ``lines 10-14``, ``new lines after line 9`` (``at the top`` for 0)."""
    if line_range.end < line_range.start:
        after = line_range.end
        return f"new lines after line {after}" if after else "new lines at the top"
    if line_range.start == line_range.end:
        return f"line {line_range.start}"
    return f"lines {line_range.start}-{line_range.end}"


def note_text(pushed: RepoPushed, overlaps: Sequence[Overlap]) -> str:
    """What the agent reads: who pushed what, where it meets the agent's own changes."""
    shown = "; ".join(o.describe() for o in overlaps[:MAX_FILES_SHOWN])
    if len(overlaps) > MAX_FILES_SHOWN:
        shown += f"; and {len(overlaps) - MAX_FILES_SHOWN} more files"
    return (
        f"Note: agent {pushed.agent_id} changed {shown} on {pushed.branch} (pushed, commit "
        f"{pushed.commit[:12]}; line numbers of the base {pushed.base_branch}), where you are "
        "changing the same code. Rebase onto it or avoid those lines."
    )
