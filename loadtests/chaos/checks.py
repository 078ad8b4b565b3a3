"""Table rows: a figure, its target, and whether the run met it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadtests.chaos.evidence import Leftovers, Outcome


@dataclass
class Check:
    """One row of the chaos table; ``passed`` None marks a figure with no target."""

    scenario: str
    name: str
    figure: str
    target: str
    passed: bool | None

    def as_dict(self) -> dict[str, Any]:
        """For the JSON result."""
        return vars(self).copy()


def zero(scenario: str, name: str, value: int, detail: list[str] | None = None) -> Check:
    """A count that must be 0; the first examples follow the figure when it is not."""
    figure = str(value)
    if value and detail:
        figure += f"  e.g. {'; '.join(detail[:2])}"
    return Check(scenario, name, figure, "0", value == 0)


def exactly_once(scenario: str, result: Outcome, all_complete: bool = True) -> list[Check]:
    """Every accepted task ended once: none lost, none ended, completed or pushed twice."""
    ended = result.completed + result.failed + result.killed
    rows = [
        Check(
            scenario,
            "tasks accepted / ended",
            f"{result.accepted} / {ended} (completed {result.completed}, failed "
            f"{result.failed}, killed {result.killed}; {result.retried} retried, "
            f"most attempts {result.max_attempts})",
            "all end",
            ended == result.accepted,
        ),
        zero(scenario, "lost (accepted, never final)", result.lost),
        zero(scenario, "ended twice", result.ended_twice, result.doubled),
        zero(scenario, "completed twice", result.completed_twice, result.doubled),
        zero(scenario, "pushed twice", result.pushed_twice, result.doubled),
        Check(
            scenario,
            "completed agents whose push the remote logged",
            f"{result.completed_with_push} of {result.completed}",
            "all",
            result.completed_with_push == result.completed,
        ),
    ]
    if all_complete:
        rows += [
            zero(
                scenario,
                "failed with attempts left",
                result.failed - result.failed_exhausted,
                result.failures,
            ),
            Check(
                scenario,
                "failed after their last attempt",
                f"{result.failed_exhausted} (each fault hit costs an attempt)",
                "-",
                None,
            ),
        ]
    return rows


def clean(scenario: str, found: Leftovers) -> list[Check]:
    """Nothing left behind and the clone cache sound."""
    return [
        zero(scenario, "orphan processes", len(found.processes), found.processes),
        zero(
            scenario,
            "orphan worktrees (dirs + registered)",
            len(found.worktree_dirs) + len(found.registered_worktrees),
            found.worktree_dirs + found.registered_worktrees,
        ),
        zero(scenario, "orphan process groups in Valkey", found.process_groups),
        zero(scenario, "git fsck errors in the cache", len(found.fsck_errors), found.fsck_errors),
    ]
