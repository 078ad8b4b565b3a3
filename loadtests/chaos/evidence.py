"""What must hold after faults, read from the system and the machine, never assumed.

Exactly once is read from each agent's event history (its state changes, in the order
the store applied them) and from the bare remote's reflog (every ref update a push
made); leftovers from the process table, the worktree directories, the clone cache's
``git worktree list`` and Valkey's process-group records.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from shared.git import Git

FINAL = ("completed", "failed", "killed")


def enable_push_log(remote: Path) -> None:
    """Make the bare remote log every ref update, so pushes can be counted afterwards."""
    Git(remote).run("config", "core.logAllRefUpdates", "always")


def pushes_per_branch(remote: Path) -> dict[str, int]:
    """How many times each agent branch on ``remote`` was updated by a push."""
    git = Git(remote)
    refs = git.out("for-each-ref", "--format=%(refname)", "refs/heads/mosaic/").split()
    counts: dict[str, int] = {}
    for ref in refs:
        updates = len(git.out("reflog", "show", "--format=%H", ref, "--").split())
        if not updates:
            raise RuntimeError(f"{remote} keeps no reflog of {ref}: pushes cannot be counted")
        counts[ref.removeprefix("refs/heads/")] = updates
    return counts


def final_events(record: dict[str, Any]) -> list[str]:
    """The final states an agent's history entered, in order (one, if it ended once)."""
    return [
        str(e["state"])
        for e in record.get("events", [])
        if e.get("kind") == "state" and e.get("state") in FINAL
    ]


@dataclass
class Outcome:
    """Exactly-once figures over every accepted agent of a scenario."""

    accepted: int = 0
    completed: int = 0
    failed: int = 0
    failed_exhausted: int = 0
    """Failed after every attempt its ``maxRetries`` allowed (each fault costs one)."""
    killed: int = 0
    lost: int = 0
    ended_twice: int = 0
    completed_twice: int = 0
    pushed_twice: int = 0
    completed_with_push: int = 0
    """Completed agents whose branch is on the remote: the push counter sees them."""
    retried: int = 0
    max_attempts: int = 0
    failures: list[str] = field(default_factory=list)
    """Distinct errors of tasks failed with attempts left (the first five)."""
    exhausted_errors: list[str] = field(default_factory=list)
    """Distinct errors of tasks failed after their last attempt (the first five)."""
    doubled: list[str] = field(default_factory=list)


def outcome(
    records: list[dict[str, Any]], pushes: dict[str, int], accepted: int, max_attempts: int
) -> Outcome:
    """Count how each accepted agent ended, and anything that happened twice.

    A task that failed after ``max_attempts`` attempts (its ``maxRetries`` + 1) used up
    what it was allowed; one that failed earlier was given up on with attempts left."""
    result = Outcome(accepted=accepted, lost=accepted - len(records))
    for record in records:
        state = record.get("state")
        ends = final_events(record)
        if state not in FINAL or not ends:
            result.lost += 1
            continue
        result.completed += state == "completed"
        result.failed += state == "failed"
        result.killed += state == "killed"
        exhausted = int(record.get("attempts") or 0) >= max_attempts
        result.failed_exhausted += state == "failed" and exhausted
        if state == "failed":
            error = str(record.get("error"))[:200]
            seen = result.exhausted_errors if exhausted else result.failures
            if error not in seen and len(seen) < 5:
                seen.append(error)
        agent = record["agentId"]
        twice = []
        if len(ends) > 1:
            result.ended_twice += 1
            twice.append(f"ended {ends}")
        if ends.count("completed") > 1:
            result.completed_twice += 1
        branch_pushes = pushes.get(f"mosaic/agent-{agent}", 0)
        result.completed_with_push += state == "completed" and branch_pushes > 0
        if branch_pushes > 1:
            result.pushed_twice += 1
            twice.append(f"pushed {branch_pushes} times")
        if twice and len(result.doubled) < 5:
            result.doubled.append(f"{agent}: {', '.join(twice)}")
        attempts = int(record.get("attempts") or 0)
        result.retried += attempts > 1
        result.max_attempts = max(result.max_attempts, attempts)
    return result


@dataclass
class Leftovers:
    """What the system left behind once every agent was final."""

    processes: list[str] = field(default_factory=list)
    worktree_dirs: list[str] = field(default_factory=list)
    registered_worktrees: list[str] = field(default_factory=list)
    process_groups: int = 0
    fsck_errors: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Processes, worktree directories, registered worktrees and process groups."""
        return (
            len(self.processes)
            + len(self.worktree_dirs)
            + len(self.registered_worktrees)
            + self.process_groups
        )


def leftover_processes(
    home: Path, system_pids: set[int], busy: frozenset[int] = frozenset()
) -> list[str]:
    """Live processes that belong to an agent of this system: a sandbox or command whose
    command line or working directory names one of its agent repositories
    (``<home>/repos/<name>_worktrees/...``: bwrap names the worktree it binds, a ``none``
    sandbox's command runs in it), other than the servers and services and the children
    of ``busy`` (gitops' and gates' own git and gate commands). A spawner's start-up
    probe (``bwrap <view> -- /bin/true``) names ``home`` only to hide it, so it is no
    agent's (counting it made a restarted spawner look like a live agent)."""
    mine = re.compile(re.escape(str(home / "repos")) + r"/[^/\s]+_worktrees/")
    skip = set(system_pids) | {os.getpid()}
    for pid in busy:
        with contextlib.suppress(psutil.Error):
            skip |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
    found: list[str] = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = proc.info
        if info["pid"] in skip:
            continue
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info.get("cmdline") or [])
        cwd = info.get("cwd") or ""
        if mine.search(cmdline) or mine.match(cwd + "/"):
            found.append(f"{info['pid']}: {cmdline[:160]}")
    return found


def caches(home: Path) -> list[Path]:
    """The gitops clone caches under ``home`` (bare repositories)."""
    root = home / "repos"
    if not root.is_dir():
        return []
    return [
        p
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.startswith(".") and not p.name.endswith("_worktrees")
    ]


def leftovers(home: Path, system_pids: set[int], process_groups: int) -> Leftovers:
    """Processes, worktrees (on disk and registered in each cache), and ``git fsck``."""
    found = Leftovers(process_groups=process_groups)
    found.processes = leftover_processes(home, system_pids)
    root = home / "repos"
    if root.is_dir():
        found.worktree_dirs = [
            str(p) for d in root.glob("*_worktrees") for p in d.iterdir() if p.is_dir()
        ]
    for cache in caches(home):
        git = Git(cache)
        listing = git.out("worktree", "list", "--porcelain")
        found.registered_worktrees += [
            line.split(" ", 1)[1]
            for line in listing.splitlines()
            if line.startswith("worktree ") and line.split(" ", 1)[1] != str(cache)
        ]
        fsck = git.run("fsck", "--no-progress", "--no-dangling", ok=range(256))
        if fsck.status != 0 or "error" in fsck.stderr.lower():
            found.fsck_errors.append(f"{cache.name}: exit {fsck.status}: {fsck.stderr[-300:]}")
    return found
