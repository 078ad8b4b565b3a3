"""Where gate commands run: one throwaway sandbox of ``shared.sandbox`` per command.

The gates have no runner of their own. Each gate command gets a fresh sandbox from the
same factory the spawner uses (``MOSAIC_SANDBOX``), made from the environment the agent
ran in (``GateCheckRequested.environment_image``/``environment_env``), so a gate sees
the tools the agent saw: the environment image (docker), the host's tools (bwrap), or
the host with Mosaic's own tools (``none``). The sandbox is closed when the command
ends, fails, times out or is cancelled: nothing is left behind.

A gate script starts with a preamble, run inside the sandbox: it makes a private
directory under the sandbox's own temp dir and points ``HOME``, ``TMPDIR`` and the
usual tools' caches there (``cache_env``), so a gate leaves no files in the worktree
that a commit would pick up; then it checks that the gate's tool is installed there,
so a missing tool reads as "not checked", never as a pass or as the tool's own failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shared.sandbox.base import Limits, SandboxFactory, SandboxSpec
from shared.sandbox.select import sandbox_factory
from shared.sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)

TOOL_MISSING_EXIT = 127
TOOL_MISSING_MARK = "mosaic-gates: tool not installed: "
GATE_OWNER = "gates"
"""``mosaic.owner`` of gate sandboxes (see ``GateRunner.run`` on why no deployment label)."""
_CLOSE_TIMEOUT_S = 60.0


GATE_LIMITS = Limits(memory_mb=2048, cpus=1.0, pids=512, file_size_mb=512, tmp_size_mb=512)
"""Bounds of one gate command (its CPU time comes from the gate's timeout)."""


@dataclass(frozen=True)
class RunResult:
    """A finished gate command: stdout and stderr interleaved, maybe truncated."""

    exit_code: int
    output: str
    duration_ms: int
    timed_out: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class Environment:
    """The environment the agent ran in, which its gates run in too."""

    image: str | None = None
    """The docker image (``None``: the backend's default image)."""
    env: tuple[tuple[str, str], ...] = ()
    """The repository's declared, non-secret environment variables."""


@dataclass(frozen=True)
class GateTarget:
    """What a gate command runs against: whose worktree, in which environment."""

    agent_id: str
    task_id: str
    worktree: Path
    environment: Environment = Environment()
    shared_objects: Path | None = None
    """The cache objects the agent's repository borrows: mounted read-only, so git in a
    gate command sees the repository's history as the agent does."""


def cache_env(tmp: str) -> dict[str, str]:
    """Environment that sends the usual tools' caches and data files to ``tmp``."""
    return {
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "CI": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
        "COVERAGE_FILE": f"{tmp}/.coverage",
        "MYPY_CACHE_DIR": f"{tmp}/.mypy_cache",
        "RUFF_CACHE_DIR": f"{tmp}/.ruff_cache",
        "PYTEST_ADDOPTS": "-p no:cacheprovider",
        "npm_config_cache": f"{tmp}/.npm",
        "npm_config_update_notifier": "false",
    }


_TMP_VAR = "MOSAIC_GATE_TMP"


def preamble(path_prefix: str = "") -> str:
    """Shell lines that give the gate a private cache dir inside its sandbox.

    The directory is made where the sandbox keeps its own temp files (``$TMPDIR``, else
    ``/tmp``: private in every backend), so its path is only known inside; hence a
    script, not ``SandboxSpec.env``. ``path_prefix`` goes before the sandbox's ``PATH``.
    """
    lines = [
        f'{_TMP_VAR}=$(mktemp -d "${{TMPDIR:-/tmp}}/mosaic-gate.XXXXXX") || '
        "{ echo 'mosaic-gates: cannot make a temp dir'; exit 125; }"
    ]
    for name, value in cache_env(f"${{{_TMP_VAR}}}").items():
        quoted = '"' + value.replace('"', '\\"') + '"' if _TMP_VAR in value else shlex.quote(value)
        lines.append(f"export {name}={quoted}")
    if path_prefix:
        lines.append(f'export PATH={shlex.quote(path_prefix)}:"$PATH"')
    return "\n".join(lines)


def split_tool(tool: str) -> tuple[str, str | None]:
    """(program, Python module or None): ``python3 -m ruff`` is python3 with ruff."""
    words = tool.split()
    if len(words) == 3 and words[1] == "-m":
        return words[0], words[2]
    return tool, None


def tool_label(tool: str) -> str:
    """How a missing tool is named: ``ruff``, not ``python3 -m ruff``."""
    program, module = split_tool(tool)
    return module or program


def guarded(command: str, tool: str) -> str:
    """``command``, preceded by a check that ``tool`` is installed where it runs.

    ``tool`` is a program (looked up with ``command -v``) or ``<python> -m <module>``
    (the interpreter, and the module importable by it). A missing tool exits
    ``TOOL_MISSING_EXIT`` after printing ``TOOL_MISSING_MARK`` and its name.
    """
    if not tool:
        return command
    program, module = split_tool(tool)
    exe = shlex.quote(program)
    missing = (
        f"{{ echo {shlex.quote(TOOL_MISSING_MARK + tool_label(tool))}; exit {TOOL_MISSING_EXIT}; }}"
    )
    lines = [f"command -v {exe} >/dev/null 2>&1 || {missing}"]
    if module is not None:
        probe = (
            "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"
        )
        lines.append(
            f"{exe} -c {shlex.quote(probe)} {shlex.quote(module)} >/dev/null 2>&1 || {missing}"
        )
    return "\n".join([*lines, command])


def own_tools_dir() -> str:
    """The ``bin`` directory of the interpreter running the gates (Mosaic's venv)."""
    return str(Path(sys.executable).parent)


def host_path_prefix(kind: str, extra: str, own_tools: bool) -> str:
    """What goes before ``PATH`` for a sandbox ``kind``.

    Only backends that see the host's files get host directories: ``GATES_TOOL_PATH``
    for ``none`` and ``bwrap``; Mosaic's own tools for ``none`` alone (with bwrap the
    host's tools are the environment, as for the agent, which does not get Mosaic's
    venv either); nothing for docker, whose image is the environment.
    """
    if kind not in ("none", "bwrap"):
        return ""
    parts = [p for p in extra.split(os.pathsep) if p]
    if own_tools and kind == "none":
        parts.append(own_tools_dir())
    return os.pathsep.join(dict.fromkeys(parts))


class SandboxSource(Protocol):
    """Gives the sandbox factory gate commands run in, or says why there is none."""

    async def factory(self) -> SandboxFactory:
        """The factory; ``SandboxError`` (with what to install or set) when none works."""
        ...


class FixedSandboxes:
    """One factory chosen by the caller (tests, embedding)."""

    def __init__(self, factory: SandboxFactory) -> None:
        self._factory = factory

    async def factory(self) -> SandboxFactory:
        """The factory given."""
        return self._factory


class SelectedSandboxes:
    """The factory ``MOSAIC_SANDBOX`` selects, as for the spawner; chosen on first use.

    A failed choice is not remembered: the next check tries again (a daemon may have
    come up), and until one works every check fails closed with the reason.
    """

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self._settings = settings or SandboxSettings()
        self._chosen: SandboxFactory | None = None
        self._lock = asyncio.Lock()

    async def factory(self) -> SandboxFactory:
        """The selected factory (``SandboxError`` when no sandbox can run here)."""
        async with self._lock:
            if self._chosen is None:
                self._chosen = await sandbox_factory(self._settings)
                log.info("gates: commands run in %s sandboxes", self._chosen.kind)
            return self._chosen


class GateRunner:
    """Runs gate commands, each in its own sandbox from ``factory``."""

    def __init__(
        self,
        factory: SandboxFactory,
        limits: Limits | None = None,
        *,
        tool_path: str = "",
        own_tools: bool = True,
    ) -> None:
        self.factory = factory
        self.kind = factory.kind
        self._limits = limits or GATE_LIMITS
        self._path_prefix = host_path_prefix(factory.kind, tool_path, own_tools)

    def where(self, environment: Environment) -> str:
        """Where commands run, for reasons: ``docker sandbox, image X``."""
        if self.kind == "docker":
            return f"{self.kind} sandbox, image {environment.image or 'MOSAIC_SANDBOX_IMAGE'}"
        return f"{self.kind} sandbox"

    def _spec(self, target: GateTarget, timeout: float, writable: bool) -> SandboxSpec:
        limits = self._limits
        return SandboxSpec(
            # its own id: a sandbox backend replaces an agent's earlier sandbox, so the
            # agent's id would end the agent's live sandbox (and a concurrent gate's)
            agent_id=f"{target.agent_id}-gate-{uuid.uuid4().hex[:8]}",
            task_id=target.task_id,
            worktree=target.worktree,
            network=False,
            limits=dataclasses.replace(limits, cpu_seconds=int(timeout) + 5),
            owner=GATE_OWNER,
            # no deployment label: the reapers remove a labelled container whose agent
            # id is not a live agent, which a gate's own id never is
            deployment=None,
            image=target.environment.image,
            env=target.environment.env,
            writable=writable,
            readonly=(target.shared_objects,) if target.shared_objects else (),
        )

    async def run(
        self, command: str, target: GateTarget, *, timeout: float, writable: bool, max_output: int
    ) -> RunResult:
        """Run ``sh -c command`` (after the preamble) in a fresh sandbox, then close it.

        ``SandboxError`` when the sandbox cannot be made or used (not: the command ran
        and failed). The sandbox is closed on every path, cancellation included.
        """
        started = time.monotonic()
        sandbox = await self.factory.create(self._spec(target, timeout, writable))
        try:
            script = f"{preamble(self._path_prefix)}\n{command}"
            result = await sandbox.exec(script, timeout=timeout, max_output=max_output)
        finally:
            closing = asyncio.ensure_future(sandbox.close())
            try:
                await asyncio.shield(asyncio.wait_for(closing, _CLOSE_TIMEOUT_S))
            except Exception as exc:  # the command's result stands; the leak is logged
                log.error("gate sandbox not closed: %s", exc, extra={"agent_id": target.agent_id})
            except asyncio.CancelledError:
                # cancelled again while closing: the close goes on unawaited
                closing.add_done_callback(_log_close_failure)
                raise
        return RunResult(
            exit_code=result.exit_code,
            output=result.output,
            duration_ms=max(1, int((time.monotonic() - started) * 1000)),
            timed_out=result.timed_out,
            truncated=result.truncated,
        )


def _log_close_failure(done: asyncio.Future[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if done.exception() is not None:
            log.error("gate sandbox not closed: %s", done.exception())
