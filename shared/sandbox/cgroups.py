"""A cgroup per bwrap sandbox, where the host lets us make one: pids, memory, CPU together.

rlimits bound each process; a cgroup bounds all the sandbox's commands together, as
docker does, and its process count binds root too (``RLIMIT_NPROC`` does not). The
group is made under this process's own cgroup for each controller (so the services'
own limits still hold above it), named ``mosaic-<pid>.<start>-<agent>-<id>`` after the
process that made it: a spawner killed outright leaves its sandboxes' cgroups behind
(their processes die with it), and ``sweep`` removes those whose maker is gone.
cgroup v1 (``pids``, ``memory``, ``cpu`` hierarchies) or v2 (one directory with
``pids.max``, ``memory.max``, ``cpu.max``). Making one needs write access there (root,
or a delegated subtree); where that fails the sandbox keeps its rlimits, and the
factory logs which controllers took.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import time
from pathlib import Path

from shared.sandbox.base import Limits
from shared.sandbox.procgroups import start_ticks

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
_CPU_PERIOD_US = 100_000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and ``""`` for the v2 one."""
    own: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(","):
                own[name] = path
    return own


def _owner_tag(pid: int | None = None) -> str:
    """``<pid>.<start ticks>`` of the process that makes cgroups (this one by default)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{start_ticks(pid) or 0}"


def _bases() -> dict[str, Path]:
    """Where sandbox cgroups are made: this process's own cgroup, per v1 controller
    (``pids``, ``memory``, ``cpu``), or its one v2 directory (key ``""``)."""
    own = _own_cgroups()
    if (CGROUP_ROOT / "cgroup.controllers").exists() and "pids" not in own:
        return {"": CGROUP_ROOT / own.get("", "/").lstrip("/")}
    return {c: CGROUP_ROOT / c / own[c].lstrip("/") for c in ("pids", "memory", "cpu") if c in own}


def sweep() -> int:
    """Remove the empty sandbox cgroups whose maker process is gone; returns how many."""
    removed = 0
    for base in _bases().values():
        with contextlib.suppress(OSError):
            for path in base.glob("mosaic-*"):
                tag = path.name.removeprefix("mosaic-").split("-", 1)[0]
                pid_text = tag.partition(".")[0]
                if not pid_text.isdigit() or _owner_tag(int(pid_text)) == tag:
                    continue  # not ours, or its maker still lives
                with contextlib.suppress(OSError):
                    path.rmdir()
                    removed += 1
    return removed


def _limit_files(limits: Limits, v2: bool) -> dict[str, dict[str, str]]:
    """What to write, per controller (``""`` for v2's single directory)."""
    memory = str(limits.memory_mb * 1024 * 1024)
    quota = max(1000, int(limits.cpus * _CPU_PERIOD_US))
    if v2:
        return {
            "": {
                "pids.max": str(limits.pids),
                "memory.max": memory,
                "memory.swap.max": "0",
                "cpu.max": f"{quota} {_CPU_PERIOD_US}",
            }
        }
    return {
        "pids": {"pids.max": str(limits.pids)},
        "memory": {"memory.limit_in_bytes": memory},
        "cpu": {"cpu.cfs_period_us": str(_CPU_PERIOD_US), "cpu.cfs_quota_us": str(quota)},
    }


class SandboxCgroup:
    """The cgroup directories of one sandbox (one per v1 controller, or one on v2)."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        """Controller (``""`` on v2) to directory, only those whose limits were written."""

    @classmethod
    def create(cls, name: str, limits: Limits) -> SandboxCgroup | None:
        """Make and bound the sandbox's cgroup; None when no controller could be used."""
        bases = _bases()
        leaf = f"mosaic-{_owner_tag()}-{_SAFE.sub('-', name)}"
        dirs: dict[str, Path] = {}
        for controller, files in _limit_files(limits, v2="" in bases).items():
            if controller not in bases:
                continue
            path = bases[controller] / leaf
            try:
                path.mkdir()
            except OSError:
                continue
            try:
                for file, value in files.items():
                    if (path / file).exists() or file != "memory.swap.max":
                        (path / file).write_text(value)
            except OSError as exc:
                logger.info("cgroup %s not usable for the sandbox: %s", path, exc)
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            dirs[controller] = path
        return cls(dirs) if dirs else None

    @property
    def controllers(self) -> list[str]:
        """The controllers in force (``unified`` for v2)."""
        return sorted(c or "unified" for c in self.dirs)

    def join(self) -> None:
        """Move the calling process into the sandbox's cgroup (a ``preexec_fn`` step)."""
        pid = str(os.getpid())
        for path in self.dirs.values():
            (path / "cgroup.procs").write_text(pid)

    def kill(self) -> None:
        """SIGKILL every process still in the cgroup."""
        for path in self.dirs.values():
            if (path / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (path / "cgroup.kill").write_text("1")
                continue
            with contextlib.suppress(OSError):
                for pid in (path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self, within_s: float = 2.0) -> None:
        """Kill what is left and remove the directories (retried while processes exit)."""
        deadline = time.monotonic() + within_s
        for path in self.dirs.values():
            while True:
                self.kill()
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        logger.warning("cannot remove cgroup %s", path)
                        break
                    time.sleep(0.01)
