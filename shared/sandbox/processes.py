"""Running sandbox commands as host process groups: spawn, bound, read, kill, record.

Shared by the backends whose commands are host processes (``none`` runs ``sh -c``
directly, ``bwrap`` runs ``bwrap ... sh -c``). Each command leads its own process
group (``start_new_session``) with the spec's rlimits applied before ``exec``; its
output is read up to ``max_output``; on exit, timeout, cancellation or ``kill()`` the
whole group is SIGKILLed, so nothing of a command outlives it. With a
``ProcessGroupRegistry`` each live group is recorded in Valkey for the killswitch.

A leader that dies with this process (``die_with_parent``) also gets a *lifeline* on its
standard input: the read end of a pipe whose only writer is this process, open until
the command is over. It reads end of file the moment this process dies, however it
dies; the bwrap sandbox watches it from inside (``shared.sandbox.bwrap.LIFELINE_WATCH``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from shared.sandbox.base import ExecResult, Limits
from shared.sandbox.procgroups import ProcessGroupRegistry, alive, kill_tree_top

_DRAIN_GRACE_S = 0.5
"""After the command's leader exits, how long background children may keep its output open."""
_READ_CHUNK = 65_536
_SETTLE_S = 2.0
"""How long a kill waits for the killed leader's children to be dead."""
_SETTLE_POLL_S = 0.005
_PR_SET_PDEATHSIG = 1


_COUNT_FRESH_S = 0.5
"""How long a count of the uid's processes serves the next commands' RLIMIT_NPROC: each
count stats every entry of ``/proc``, and a hundred agents start commands together. The
bound is a count taken at most this long ago plus ``limits.pids`` (a cgroup, where one
can be made, bounds the sandbox exactly)."""
_counted: dict[int, tuple[float, int]] = {}


def user_process_count(uid: int | None = None) -> int:
    """Processes of ``uid`` (default: this process's), counted at most ``_COUNT_FRESH_S``
    ago; RLIMIT_NPROC counts them all."""
    uid = os.getuid() if uid is None else uid
    now = time.monotonic()
    counted = _counted.get(uid)
    if counted is not None and now - counted[0] < _COUNT_FRESH_S:
        return counted[1]
    count = _count_processes(uid)
    _counted[uid] = (now, count)
    return count


def _count_processes(uid: int) -> int:
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid == uid:
                        count += 1
    return count


def rlimit_setter(limits: Limits, join: Callable[[], None] | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` applying ``limits`` in the child before ``exec`` (inherited by all
    its descendants): address space, CPU seconds, file size, processes, no core dumps.

    RLIMIT_NPROC counts every process of the uid, so the bound is the uid's current count
    plus ``limits.pids``; it does not bind root (the kernel exempts uid 0). ``join``, when
    given, runs first (moving the child into the sandbox's cgroup).
    """
    memory = limits.memory_mb * 1024 * 1024
    file_size = limits.file_size_mb * 1024 * 1024
    nproc = limits.pids + user_process_count()

    def apply() -> None:
        if join is not None:
            join()
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def parent_death_guard() -> Callable[[], None]:
    """A ``preexec_fn`` step, run first in the child: it is SIGKILLed when the process
    that started it dies, and exits at once if that process died already.

    bwrap's ``--die-with-parent`` takes effect only once bwrap runs. A spawner SIGKILLed
    between ``fork`` and that moment (the preexec steps and the ``exec``: tens of
    milliseconds on a loaded machine) left the sandbox running under init, unrecorded in
    the registry, so neither the killswitch nor the reaper could find it: the chaos
    suite's kill-all found one agent's sandbox alive for its whole command. The signal
    set here survives ``exec``; comparing the parent pid covers a parent that died
    before it was set. The kernel sends it when the forking *thread* exits: asyncio
    forks in its event loop's thread, which lives as long as the service.
    """
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def apply() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return apply


def preexec_steps(*steps: Callable[[], None]) -> Callable[[], None]:
    """One ``preexec_fn`` running ``steps`` in order."""

    def apply() -> None:
        for step in steps:
            step()

    return apply


async def exited(proc: asyncio.subprocess.Process) -> None:
    """Wait for the leader to exit; unlike ``proc.wait()``, not for its pipes to close
    (a background child holding stdout would otherwise hold the caller too)."""
    delay = 0.002
    while proc.returncode is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def killpg(pgid: int) -> list[int]:
    """SIGKILL a process group and its leader's direct children (``procgroups.kill_tree_top``);
    returns those children, for ``settled``."""
    return kill_tree_top(pgid)


async def settled(pids: list[int]) -> None:
    """Wait (bounded) until ``pids`` are dead: for bwrap, the sandbox's pid 1, whose death
    means every process of its namespace is gone."""
    for _ in range(int(_SETTLE_S / _SETTLE_POLL_S)):
        if not any(alive(pid) for pid in pids):
            return
        await asyncio.sleep(_SETTLE_POLL_S)


class Lifeline:
    """A pipe whose write end only this process holds (``os.pipe`` fds are not
    inherited): its read end is a command's standard input, which reads end of file
    once this process is gone or ``cut()`` ran."""

    def __init__(self) -> None:
        self.reader, self._writer = os.pipe()

    def handed_over(self) -> None:
        """The child has its copy of the read end (or never will): ours is not needed."""
        if self.reader >= 0:
            os.close(self.reader)
            self.reader = -1

    def cut(self) -> None:
        """Close both ends: the command is over."""
        self.handed_over()
        if self._writer >= 0:
            os.close(self._writer)
            self._writer = -1


class ProcessGroups:
    """The running commands of one sandbox, each its own process group (module docstring)."""

    def __init__(
        self,
        agent_id: str,
        registry: ProcessGroupRegistry | None = None,
        join: Callable[[], None] | None = None,
        *,
        die_with_parent: bool = False,
    ) -> None:
        self._agent_id = agent_id
        self._join = join
        self._die_with_parent = die_with_parent
        """Each leader dies with this process (``parent_death_guard``): for bwrap, whose
        namespace ends with its leader; not for ``none``, whose other processes would be
        left behind without a living leader to find them by."""
        """Run in each child before ``exec`` (``SandboxCgroup.join``), when given."""
        self.registry = registry
        """Where live groups are recorded for the killswitch (``shared.sandbox.procgroups``)."""
        self._groups: set[int] = set()
        self._kills = 0
        """Bumped by ``kill()``: a command still being spawned then dies as soon as it exists."""

    @property
    def live(self) -> frozenset[int]:
        """The process groups (leaders' pids) of the commands running now."""
        return frozenset(self._groups)

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None,
        env: Mapping[str, str],
        limits: Limits,
        timeout: float,
        max_output: int,
    ) -> ExecResult:
        """Run ``argv`` as a new group; stdout and stderr interleaved, cut at ``max_output``."""
        lifeline = Lifeline() if self._die_with_parent else None
        try:
            proc = await self._spawn(argv, cwd=cwd, env=env, limits=limits, lifeline=lifeline)
        except BaseException:
            if lifeline is not None:
                lifeline.cut()
            raise
        if lifeline is not None:
            lifeline.handed_over()
        pgid = proc.pid  # start_new_session: the leader's pid is the group's id
        self._groups.add(pgid)
        chunks: list[bytes] = []
        kept = 0
        truncated = False

        async def read_all() -> None:
            nonlocal kept, truncated
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(_READ_CHUNK):
                room = max_output - kept
                if len(chunk) > room:
                    truncated = True
                    chunk = chunk[:room]
                if chunk:
                    chunks.append(chunk)
                    kept += len(chunk)

        reader = asyncio.create_task(read_all())
        timed_out = False
        cancelled = False
        recorded: str | None = None
        try:
            if self.registry is not None:
                with contextlib.suppress(Exception):  # a kill by the spawner still works
                    recorded = await self.registry.record(self._agent_id, pgid)
            try:
                async with asyncio.timeout(timeout):
                    await exited(proc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(reader), _DRAIN_GRACE_S)
            except TimeoutError:
                timed_out = True
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            # Normal exit, timeout or cancellation: nothing of this command outlives it.
            top = killpg(pgid)
            if lifeline is not None:
                lifeline.cut()  # before any await: a second cancellation cannot leak it
            self._groups.discard(pgid)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.shield(asyncio.wait_for(exited(proc), 5.0))
            await asyncio.shield(settled(top))
            # Cancelled (a kill, a shutdown): the sandbox is closed next, and its close
            # clears every record at once (``forget_all``); a Valkey round trip here per
            # command would stand between each killed agent and its ``killed`` record.
            if recorded is not None and self.registry is not None and not cancelled:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.registry.forget(self._agent_id, recorded))
        output = b"".join(chunks).decode("utf-8", errors="replace")
        exit_code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        return ExecResult(
            exit_code=exit_code, output=output, timed_out=timed_out, truncated=truncated
        )

    async def _spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None,
        env: Mapping[str, str],
        limits: Limits,
        lifeline: Lifeline | None,
    ) -> asyncio.subprocess.Process:
        """Start the leader; a cancellation while asyncio sets up its pipes still kills
        the group (the leader may already have forked children by then)."""
        starting = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL if lifeline is None else lifeline.reader,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._preexec(limits),
            )
        )
        generation = self._kills
        try:
            proc = await asyncio.shield(starting)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                proc = await starting
                killpg(proc.pid)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(exited(proc), 5.0)
            raise
        if self._kills != generation:
            killpg(proc.pid)
        return proc

    def _preexec(self, limits: Limits) -> Callable[[], None]:
        limited = rlimit_setter(limits, self._join)
        if not self._die_with_parent:
            return limited
        return preexec_steps(parent_death_guard(), limited)

    def kill(self) -> None:
        """SIGKILL every running command's group (and any being started)."""
        self._kills += 1
        for pgid in list(self._groups):
            killpg(pgid)

    async def forget_all(self) -> None:
        """The sandbox has ended: drop its record in the registry."""
        if self.registry is not None:
            with contextlib.suppress(Exception):
                await self.registry.clear(self._agent_id)
