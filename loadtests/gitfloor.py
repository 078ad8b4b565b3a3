"""The git floors: what plain git does on this machine, serially, with no service around it.

``serial_git_cycles`` is the floor of the 100-agents-on-one-repository scenario: per
agent, ``worktree add`` of a new branch, one file committed, the branch pushed, the
worktree removed. ``worktree_add_remove`` is the floor of the dispatch scenario's start
rate: the same script with nothing but ``worktree add`` and ``worktree remove``. Both run
on a fresh bare remote and a fresh clone, so they measure the git work, not a warm cache.
"""

from __future__ import annotations

import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

_IDENTITY = ("-c", "user.name=floor", "-c", "user.email=floor@localhost")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *_IDENTITY, *args], cwd=cwd, check=True, capture_output=True)


def _fresh_clone(root: Path) -> Path:
    """A bare remote with one commit and a clone of it; returns the clone."""
    remote, clone = root / "remote.git", root / "clone"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True, capture_output=True)
    (clone / "README.md").write_text("# floor\n")
    _git(clone, "add", "-A")
    _git(clone, "commit", "-qm", "seed")
    _git(clone, "push", "-q", "origin", "HEAD:main")
    return clone


def serial_git_cycles(rounds: int = 100) -> dict[str, Any]:
    """``rounds`` full cycles (worktree add, commit, push, worktree remove), one after the
    other: the total seconds and the rate."""
    with tempfile.TemporaryDirectory(prefix="mosaic-git-floor-") as tmp:
        clone = _fresh_clone(Path(tmp))
        started, cpu = time.perf_counter(), children_cpu()
        for n in range(rounds):
            tree = Path(tmp) / f"wt-{n}"
            _git(clone, "worktree", "add", "-q", "-b", f"floor-{n}", str(tree), "origin/main")
            (tree / "load").mkdir()
            (tree / "load" / f"{n}.txt").write_text(f"{n}\n")
            _git(tree, "add", "-A")
            _git(tree, "commit", "-qm", f"floor {n}")
            _git(tree, "push", "-q", "origin", f"floor-{n}")
            _git(clone, "worktree", "remove", "--force", str(tree))
        seconds = time.perf_counter() - started
    return _rate(rounds, seconds, children_cpu() - cpu)


def worktree_add_remove(rounds: int = 100) -> dict[str, Any]:
    """``rounds`` worktree add + remove pairs, serially: the rate per second."""
    with tempfile.TemporaryDirectory(prefix="mosaic-wt-floor-") as tmp:
        clone = _fresh_clone(Path(tmp))
        started, cpu = time.perf_counter(), children_cpu()
        for n in range(rounds):
            tree = Path(tmp) / f"wt-{n}"
            _git(clone, "worktree", "add", "-q", "-b", f"floor-{n}", str(tree), "origin/main")
            _git(clone, "worktree", "remove", "--force", str(tree))
        seconds = time.perf_counter() - started
    return _rate(rounds, seconds, children_cpu() - cpu)


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children so far (the floors' git runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rate(rounds: int, seconds: float, cpu: float) -> dict[str, Any]:
    """The figures of a floor: its time, its rate, and the CPU its git processes used."""
    return {
        "rounds": rounds,
        "seconds": round(seconds, 3),
        "per_second": round(rounds / seconds, 2) if seconds else 0.0,
        "cpu_seconds": round(cpu, 3),
    }
