"""The ``docker`` sandbox: one hardened container per agent, its worktree at ``/workspace``.

The container's main process only sleeps (under Docker's ``--init``); every tool call
is a ``docker exec`` as a non-root uid in ``/workspace``: commands in their own process
group under a small runner that SIGKILLs the group on timeout and when the command
ends; file operations through a small inline ``python3`` helper that checks the real
path inside the container, so a symlink pointing out of the worktree is refused where
it would be followed. The Docker SDK is blocking: every call runs in a
thread. See docs/sandbox.md for each hardening setting and the test proving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import Mount, Ulimit

from shared.sandbox import incontainer
from shared.sandbox.base import (
    DirEntry,
    ExecResult,
    SandboxError,
    SandboxGoneError,
    SandboxPathError,
    SandboxSpec,
    readonly_dirs,
)
from shared.sandbox.containers import (
    LABEL_AGENT,
    LABEL_DEPLOYMENT,
    LABEL_OWNER,
    LABEL_TASK,
    LABEL_WARM,
    agent_containers,
    claimed_name,
    warm_name,
)
from shared.sandbox.dockerframes import STDERR, STDOUT, Frames
from shared.sandbox.envvars import sandbox_env
from shared.sandbox.paths import check_relative
from shared.sandbox.settings import SandboxSettings
from shared.sandbox.warmpool import WarmPool

logger = logging.getLogger(__name__)
T = TypeVar("T")

WORKSPACE = "/workspace"
LABEL_SANDBOX = "mosaic.sandbox_id"
DEFAULT_UID = 1000
SANDBOX_ENV = {
    "HOME": "/tmp",  # noqa: S108 - the container's own private tmpfs
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}
"""The base environment of a sandbox (on top of the image's): no secrets, ever. A spec's
declared ``env`` is added through ``envvars.sandbox_env`` (it may set ``PATH``, never
``HOME`` or a secret-looking name)."""

_FILES = incontainer.source("files")
"""The in-container file helper (``incontainer/files.py``): argv = op, path[, max bytes]."""
_RUNNER = incontainer.source("runner")
"""The in-container command runner (``incontainer/runner.py``): argv = time-out, command."""
_HELPER_MESSAGES = 64_000
"""Most bytes kept of the file helper's stderr (its refusal message)."""
_LISTING_CAP = 8_000_000
"""Most bytes of a directory listing's JSON (a directory of ~100,000 entries)."""
_TIMEOUT_EXIT = 124
_KILLED_EXITS = (-9, 126, 137)  # SIGKILLed, or the exec could not run / its end was lost
_SETTLE_S = 1.0  # how long a container that killed a command may take to read as gone
_ESCAPE_EXIT = 3
_REFUSED_EXIT = 4

_COMMANDS = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="docker-exec")
"""Threads for commands and file helpers: each holds its thread for its whole run (a
blocking attach to the exec's stream). The event loop's default pool has cores + 4
threads: with more agents than that, commands waited for a thread while their agents
showed ``running``, and a kill waited behind a ``sleep`` for its thread (10 docker
agents: a kill took 25 s, until the killswitch removed the containers itself). Threads
are made only as needed, and one blocked on a socket costs little."""
_CONTROL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="docker-control")
"""Threads for creating, killing and removing containers: never behind a command."""


async def _on(executor: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``asyncio.to_thread`` on ``executor`` (the caller's context goes along)."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


@dataclass
class _Exec:
    """What one ``docker exec`` produced."""

    exit_code: int
    output: bytes
    stdout: bytes
    stderr: bytes
    truncated: bool
    deadline_hit: bool


def _gone() -> SandboxGoneError:
    return SandboxGoneError(
        "the sandbox container is gone (removed or stopped from outside); this attempt cannot go on"
    )


def _container_name(agent_id: str, sandbox_id: str) -> str:
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", agent_id)[:48].strip("-.") or "agent"
    return f"mosaic-{safe}-{sandbox_id[:8]}"


def _decide_user(worktree: Path, settings: SandboxSettings) -> tuple[int, int]:
    """uid:gid commands run as: the setting, else the worktree's owner, never root."""
    info = worktree.stat()
    uid = settings.uid
    if uid is None:
        uid = info.st_uid if info.st_uid != 0 else DEFAULT_UID
    gid = settings.gid
    if gid is None:
        gid = info.st_gid if info.st_uid == uid and info.st_gid != 0 else uid
    if uid == 0:
        raise SandboxError("refusing to run a sandbox as root (MOSAIC_SANDBOX_UID=0)")
    return uid, gid


def _grant_worktree(worktree: Path, uid: int, gid: int, *, filled_since: bool = False) -> None:
    """Make a worktree owned by someone else the sandbox user's (needs root).

    The whole directory is handed to ``uid:gid``, its ``.git`` included: it is the
    agent's own repository (``shared.agentrepo``), which git in the container refuses
    to use unless the sandbox user owns it and the directory holding it; host-side git
    never writes there and reads it only through ``shared.agentrepo``.
    """
    info = worktree.stat()
    if info.st_uid == uid and not filled_since:  # ``filled_since``: granted while empty
        return
    if os.geteuid() != 0:
        raise SandboxError(
            f"worktree {worktree} is owned by uid {info.st_uid}, not the sandbox uid {uid}, "
            "and only root may hand it over; set MOSAIC_SANDBOX_UID to its owner"
        )
    for dirpath, dirnames, filenames in os.walk(worktree):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
    os.chown(worktree, uid, gid)


def _raw_socket(sock: Any) -> socket.socket:
    raw = getattr(sock, "_sock", sock)
    if not isinstance(raw, socket.socket):
        raise SandboxError("unexpected Docker exec stream")
    return raw


class DockerSandbox:
    """One agent's container (see the module docstring); ``close`` removes it."""

    kind = "docker"

    def __init__(
        self,
        spec: SandboxSpec,
        client: docker.DockerClient,
        container_id: str,
        user: str,
        settings: SandboxSettings,
        *,
        warm: bool = False,
    ) -> None:
        self.spec = spec
        self.warm = warm
        """Whether the container was made before its agent (``WarmPool``)."""
        self.container_id = container_id
        self.user = user
        self._client = client
        self._settings = settings
        self._closed = False
        self._killed = False  # by Mosaic (``kill``): a dead container is then no surprise
        self._early_kill: asyncio.Future[None] | None = None
        """The kill ``kill_now`` started, until ``kill`` has waited for it."""
        self._log = {"agent_id": spec.agent_id, "task_id": spec.task_id}

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("sandbox is closed")

    # -- exec plumbing (blocking; always called in a thread) --------------------------

    def _exec_sync(
        self,
        cmd: list[str],
        *,
        stdin: bytes | None,
        wall_s: float,
        max_output: int,
        keep: int = 0,
    ) -> _Exec:
        api = self._client.api
        try:
            exec_id = api.exec_create(
                self.container_id,
                cmd,
                stdout=True,
                stderr=True,
                stdin=stdin is not None,
                user=self.user,
                workdir=WORKSPACE,
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except NotFound as exc:
            raise self._gone() from exc
        except APIError as exc:
            if exc.status_code == 409 or not self._alive():  # not running / being removed
                raise self._gone() from exc
            raise SandboxError(f"cannot run in the sandbox: {exc.explanation or exc}") from exc
        except (DockerException, OSError) as exc:
            raise SandboxError(f"cannot run in the sandbox: {exc}", retryable=True) from exc
        raw = _raw_socket(sock)
        deadline = time.monotonic() + wall_s
        frames = Frames(max_output=max_output, keep=keep)
        deadline_hit = False
        try:
            if stdin is not None:
                raw.settimeout(max(0.1, deadline - time.monotonic()))
                raw.sendall(stdin)
                raw.shutdown(socket.SHUT_WR)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    deadline_hit = True
                    break
                raw.settimeout(remaining)
                try:
                    chunk = raw.recv(65536)
                except TimeoutError:
                    deadline_hit = True
                    break
                if not chunk:
                    break
                frames.feed(chunk)
        finally:
            with contextlib.suppress(OSError):
                raw.close()
            with contextlib.suppress(Exception):
                sock.close()
        exit_code = -9
        if not deadline_hit:
            for _ in range(50):
                try:
                    info = api.exec_inspect(exec_id)
                except (DockerException, OSError) as exc:
                    if not self._alive():
                        raise self._gone() from exc
                    raise SandboxError(f"lost the command's exit code: {exc}") from exc
                if not info.get("Running") and info.get("ExitCode") is not None:
                    exit_code = int(info["ExitCode"])
                    break
                time.sleep(0.02)
        if exit_code in _KILLED_EXITS and not self._killed and not self._alive(_SETTLE_S):
            # the container died under the command (removed or stopped from outside): its
            # result is not the command's, and nothing more can happen in this sandbox
            raise self._gone()
        return _Exec(
            exit_code,
            bytes(frames.output),
            bytes(frames.streams[STDOUT]),
            bytes(frames.streams[STDERR]),
            frames.truncated,
            deadline_hit,
        )

    def _gone(self) -> SandboxError:
        if self._killed:
            return SandboxError("sandbox was killed", code="sandbox_killed")
        return _gone()

    def _alive(self, settle_s: float = 0.0) -> bool:
        """Whether the container still exists and runs (a failed inspect counts as alive).

        A container being removed can still read as running for a moment after its
        processes died, so with ``settle_s`` it is looked at again until that passes.
        """
        deadline = time.monotonic() + settle_s
        while True:
            try:
                info = self._client.api.inspect_container(self.container_id)
            except NotFound:
                return False
            except (DockerException, OSError):
                return True  # cannot tell: let the caller report what it saw
            state = info.get("State") or {}
            if not state.get("Running") or state.get("Status") in ("removing", "exited", "dead"):
                return False
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.1)

    async def _helper(
        self, op: str, path: str, *args: str, answer: int = 0, stdin: bytes | None = None
    ) -> bytes:
        """Run the file helper; at most ``answer`` bytes of its stdout are kept."""
        self._check_open()
        relative = str(check_relative(path))
        result = await _on(
            _COMMANDS,
            self._exec_sync,
            ["python3", "-c", _FILES, op, relative, *args],
            stdin=stdin,
            wall_s=self._settings.docker_timeout_s,
            max_output=0,
            keep=max(answer, _HELPER_MESSAGES),
        )
        message = result.stderr.decode("utf-8", errors="replace").strip()
        if result.exit_code == _ESCAPE_EXIT:
            raise SandboxPathError(message or f"path escapes the worktree: {path}")
        if result.exit_code == _REFUSED_EXIT:
            raise SandboxError(message)
        if result.exit_code != 0 or result.deadline_hit:
            last = message.splitlines()[-1] if message else f"exit {result.exit_code}"
            raise SandboxError(f"{op} {path} failed in the sandbox: {last}")
        return result.stdout

    # -- the Sandbox protocol ---------------------------------------------------------

    async def exec(
        self,
        command: str,
        *,
        timeout: float,
        max_output: int = 64_000,
    ) -> ExecResult:
        """Run ``sh -c command`` in /workspace; past ``timeout`` its group is SIGKILLed.

        Whatever way the command ends, every process of its group (background jobs
        included) is killed with it, as in the none and bwrap backends.
        """
        self._check_open()
        limit = max(0.1, timeout)
        cmd = ["python3", "-c", _RUNNER, f"{limit:.3f}", command]
        started = time.monotonic()
        result = await _on(
            _COMMANDS,
            self._exec_sync,
            cmd,
            stdin=None,
            wall_s=limit + self._settings.exec_grace_s,
            max_output=max_output,
        )
        elapsed = time.monotonic() - started
        timed_out = result.deadline_hit or (result.exit_code == _TIMEOUT_EXIT and elapsed >= limit)
        return ExecResult(
            exit_code=result.exit_code,
            output=result.output.decode("utf-8", errors="replace"),
            timed_out=timed_out,
            truncated=result.truncated,
        )

    async def read_file(self, path: str, *, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of a regular file inside the worktree."""
        limit = max(0, max_bytes)
        return await self._helper("read", path, str(limit), answer=limit)

    async def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file (parents created), within the file size limit."""
        if not self.spec.writable:
            raise SandboxError("the worktree is read-only in this sandbox")
        limit = self.spec.limits.file_size_mb * 1024 * 1024
        if len(data) > limit:
            raise SandboxError(f"file too large: {len(data)} bytes > limit {limit} bytes")
        await self._helper("write", path, stdin=data)

    async def list_dir(self, path: str) -> list[DirEntry]:
        """Entries of a directory inside the worktree, sorted by name; links not followed."""
        raw = await self._helper("list", path, answer=_LISTING_CAP)
        try:
            entries = json.loads(raw)
        except ValueError:  # cut at the cap
            raise SandboxError(f"directory too large to list: {path}") from None
        return [DirEntry(name=str(n), is_dir=bool(d), size=int(s)) for n, d, s in entries]

    async def kill(self) -> None:
        """SIGKILL the container (every process in it) at once; no graceful stop. After
        ``kill_now``, waits for that kill instead (and makes another if it failed)."""
        self._killed = True
        early, self._early_kill = self._early_kill, None
        if early is not None:
            with contextlib.suppress(Exception):  # logged by its callback; try again below
                await asyncio.shield(early)
                return
        await _on(_CONTROL, self._kill_sync)

    def kill_now(self) -> None:
        """Start ``kill`` in a worker thread (the Docker API call blocks); the run's own
        ``kill`` then waits for it, so its record says ``killed`` only once it is done."""
        self._killed = True
        if self._early_kill is None:
            future = asyncio.get_running_loop().run_in_executor(_CONTROL, self._kill_sync)
            future.add_done_callback(_log_kill_error)
            self._early_kill = future

    def _kill_sync(self) -> None:
        try:
            self._client.api.kill(self.container_id, signal="SIGKILL")
        except NotFound:
            return
        except APIError as exc:
            if exc.status_code != 409:  # 409: not running, which is what we want
                raise SandboxError(f"cannot kill sandbox: {exc.explanation or exc}") from exc

    async def close(self) -> None:
        """Kill and remove the container; safe to call twice, and after ``kill``."""
        first = not self._closed
        self._closed = True
        await _on(_CONTROL, _remove_container, self._client, self.container_id)
        if first:
            logger.info("sandbox container removed", extra=self._log)


def _log_kill_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        logger.warning("early sandbox kill failed: %s", error)


def _remove_container(client: docker.DockerClient, container_id: str) -> None:
    try:
        client.api.remove_container(container_id, force=True, v=True)
    except NotFound:
        return
    except APIError as exc:
        if exc.status_code != 409 or "already in progress" not in str(exc):
            raise SandboxError(f"cannot remove sandbox: {exc.explanation or exc}") from exc


class DockerSandboxFactory:
    """Makes ``docker`` sandboxes with ``client``: from ``spec.image`` (the repository's
    environment) when given, else ``settings.image``."""

    kind = "docker"
    unsafe = False

    def __init__(self, client: docker.DockerClient, settings: SandboxSettings) -> None:
        self.client = client
        self.settings = settings
        self._cleanups: set[asyncio.Task[None]] = set()
        self.warm: WarmPool | None = None
        """Warm containers for agents (``MOSAIC_SANDBOX_WARM``; the spawner sets it up)."""

    def start_warm_pool(self) -> WarmPool | None:
        """The warm pool, when ``MOSAIC_SANDBOX_WARM`` asks for one (call in the loop)."""
        if self.settings.warm > 0 and self.warm is None:
            s = self.settings
            self.warm = WarmPool(self, size=s.warm, limit=s.warm_limit, max_age_s=s.warm_max_age_s)
            self.warm.start()
        return self.warm

    async def make_warm(self, spec: SandboxSpec, sandbox_id: str) -> tuple[str, str]:
        """A started container for no agent yet (``WarmPool``); its worktree the slot."""
        return await _on(_CONTROL, self._create_sync, spec, sandbox_id, warm=True)

    async def hand_over(self, container_id: str, sandbox_id: str, spec: SandboxSpec) -> None:
        """A warm container becomes ``spec``'s agent's: named for it (``agent_of``), its
        repository handed to the sandbox user as a cold start would."""

        def work() -> None:
            self.client.api.rename(container_id, claimed_name(spec.agent_id, sandbox_id))
            self._remove_earlier_attempts(spec.agent_id, spec.deployment, keep=container_id)
            if spec.writable and os.geteuid() == 0:  # else gitops made it as the sandbox user
                uid, gid = _decide_user(spec.worktree, self.settings)
                _grant_worktree(spec.worktree, uid, gid, filled_since=True)

        await _on(_CONTROL, work)

    async def remove(self, container_id: str) -> None:
        """SIGKILL and remove a container (a warm one the pool lets go)."""
        await _on(_CONTROL, _remove_container, self.client, container_id)

    async def check(self) -> None:
        """Raise ``SandboxError`` unless the daemon answers and the image exists."""

        def probe() -> None:
            try:
                self.client.ping()
                self.client.images.get(self.settings.image)
            except ImageNotFound as exc:
                raise SandboxError(
                    f"sandbox image {self.settings.image} not found (scripts/build-images.sh)"
                ) from exc
            except (DockerException, OSError) as exc:  # requests' errors are OSErrors
                raise SandboxError(f"Docker daemon not reachable: {exc}", retryable=True) from exc

        await asyncio.to_thread(probe)

    async def create(self, spec: SandboxSpec) -> DockerSandbox:
        """A started container for ``spec``; on any failure (or cancellation) none is left."""
        if not spec.worktree.is_dir():
            raise SandboxError(f"worktree does not exist: {spec.worktree}")
        log = {"agent_id": spec.agent_id, "task_id": spec.task_id}
        if self.warm is not None and (warm := await self.warm.claim(spec)) is not None:
            logger.info("sandbox container %s (warm) taken as %s", warm.container_id[:12],
                        warm.user, extra=log)  # fmt: skip
            return DockerSandbox(
                spec, self.client, warm.container_id, warm.user, self.settings, warm=True
            )
        sandbox_id = uuid.uuid4().hex
        work = asyncio.ensure_future(_on(_CONTROL, self._create_sync, spec, sandbox_id))
        try:
            container_id, user = await asyncio.shield(work)
        except asyncio.CancelledError:
            task = asyncio.ensure_future(self._cleanup_after(work, sandbox_id))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)
            raise
        logger.info("sandbox container %s started as %s", container_id[:12], user, extra=log)
        return DockerSandbox(spec, self.client, container_id, user, self.settings)

    async def _cleanup_after(self, work: asyncio.Future[tuple[str, str]], sandbox_id: str) -> None:
        with contextlib.suppress(Exception):
            await work
        await _on(_CONTROL, self._remove_by_sandbox_id, sandbox_id)

    def _remove_by_sandbox_id(self, sandbox_id: str) -> None:
        with contextlib.suppress(DockerException, SandboxError):
            found = self.client.api.containers(
                all=True, filters={"label": f"{LABEL_SANDBOX}={sandbox_id}"}
            )
            for info in found:
                _remove_container(self.client, info["Id"])

    def _remove_earlier_attempts(
        self, agent_id: str, deployment: str | None, keep: str | None = None
    ) -> None:
        # one container per agent: a retry after its spawner died replaces the dead attempt's,
        # made for it or warm (only this system's: another one sharing the daemon keeps its)
        for container_id in agent_containers(self.client, agent_id, deployment):
            if container_id != keep:
                _remove_container(self.client, container_id)

    def _create_sync(
        self, spec: SandboxSpec, sandbox_id: str, *, warm: bool = False
    ) -> tuple[str, str]:
        environment = sandbox_env(SANDBOX_ENV, spec.env)
        image = spec.image or self.settings.image
        if warm:  # no agent yet: the pool's, found by its label, named for its agent later
            name = warm_name(sandbox_id)
            labels = {LABEL_WARM: "1", LABEL_OWNER: spec.owner, LABEL_SANDBOX: sandbox_id}
        else:
            self._remove_earlier_attempts(spec.agent_id, spec.deployment)
            name = _container_name(spec.agent_id, sandbox_id)
            labels = {
                LABEL_AGENT: spec.agent_id,
                LABEL_TASK: spec.task_id,
                LABEL_OWNER: spec.owner,
                LABEL_SANDBOX: sandbox_id,
            }
        if spec.deployment:
            labels[LABEL_DEPLOYMENT] = spec.deployment
        uid, gid = _decide_user(spec.worktree, self.settings)
        limits = spec.limits
        memory = f"{limits.memory_mb}m"
        try:
            if spec.writable:
                _grant_worktree(spec.worktree, uid, gid)
            container = self.client.containers.create(
                image,
                command=["sleep", "infinity"],
                name=name,
                hostname="sandbox",
                user=f"{uid}:{gid}",
                working_dir=WORKSPACE,
                environment=environment,
                labels=labels,
                mounts=[
                    Mount(
                        WORKSPACE,
                        str(spec.worktree.resolve()),
                        type="bind",
                        read_only=not spec.writable,
                    ),
                    *(
                        Mount(shown, shown, type="bind", read_only=True)
                        for shown in readonly_dirs(spec)
                    ),
                ],
                read_only=True,
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_size_mb}m,mode=1777"},  # noqa: S108
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=memory,
                memswap_limit=memory,
                nano_cpus=int(limits.cpus * 1e9),
                pids_limit=limits.pids,
                ulimits=[
                    Ulimit(
                        name="fsize", soft=limits.file_size_mb << 20, hard=limits.file_size_mb << 20
                    ),
                    Ulimit(name="core", soft=0, hard=0),
                ],
                oom_score_adj=500,
                network_mode="bridge" if spec.network else "none",
                ipc_mode="private",
                init=True,
                stop_signal="SIGKILL",
                detach=True,
            )
        except ImageNotFound as exc:
            self._remove_by_sandbox_id(sandbox_id)
            if spec.image is not None:
                raise SandboxError(f"environment image {image} not found") from exc
            raise SandboxError(
                f"sandbox image {image} not found (scripts/build-images.sh)"
            ) from exc
        except (DockerException, OSError) as exc:
            self._remove_by_sandbox_id(sandbox_id)
            raise SandboxError(f"cannot create sandbox container: {exc}", retryable=True) from exc
        try:
            container.start()
        except BaseException as exc:
            _remove_container(self.client, str(container.id))
            raise SandboxError(f"cannot start sandbox container: {exc}", retryable=True) from exc
        return str(container.id), f"{uid}:{gid}"
