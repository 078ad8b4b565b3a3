"""The ``docker`` runner: each gate command in its own hardened, throwaway container.

The same hardening as the spawner's docker sandbox: non-root uid (the worktree's
owner, never root), ``cap_drop=ALL``, ``no-new-privileges``, read-only root with a
private tmpfs ``/tmp``, memory, CPU and pids limits, no network, Docker's init. The
worktree is mounted at ``/workspace`` read-only unless the gate is ``writable``. The
container is removed whatever happens; on timeout it is SIGKILLed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import Mount, Ulimit

from services.gates.errors import RunnerError
from services.gates.runner import RunLimits, RunResult, cache_env

log = logging.getLogger(__name__)

WORKSPACE = "/workspace"
LABEL_COMPONENT = "mosaic.component"
LABEL_RUN = "mosaic.gates.run_id"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_UID = 1000


class DockerRunner:
    """Runs gate commands in containers from ``image``."""

    kind = "docker"

    def __init__(
        self,
        client: docker.DockerClient,
        image: str,
        limits: RunLimits | None = None,
        api_timeout: float = 30.0,
    ) -> None:
        self._client = client
        self._image = image
        self._limits = limits or RunLimits()
        self._api_timeout = api_timeout

    async def check(self) -> None:
        """Raise ``RunnerError`` unless the daemon answers and the image exists."""

        def probe() -> None:
            try:
                self._client.ping()
                self._client.images.get(self._image)
            except ImageNotFound as exc:
                raise RunnerError(f"gates image {self._image} not found") from exc
            except DockerException as exc:
                raise RunnerError(f"Docker daemon not reachable: {exc}") from exc

        await asyncio.to_thread(probe)

    async def run(
        self, command: str, worktree: Path, *, timeout: float, writable: bool, max_output: int
    ) -> RunResult:
        """Run ``sh -c command`` in a fresh container; it is gone when this returns."""
        run_id = uuid.uuid4().hex
        started = time.monotonic()
        work = asyncio.ensure_future(
            asyncio.to_thread(self._run_sync, command, worktree, timeout, writable, run_id)
        )
        try:
            code, output, timed_out = await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.to_thread(self._remove_by_run_id, run_id)
            raise
        truncated = len(output) > max_output
        return RunResult(
            exit_code=code,
            output=output[:max_output].decode("utf-8", errors="replace"),
            duration_ms=int((time.monotonic() - started) * 1000),
            timed_out=timed_out,
            truncated=truncated,
        )

    def _user(self, worktree: Path) -> str:
        info = worktree.stat()
        uid = info.st_uid if info.st_uid != 0 else DEFAULT_UID
        gid = info.st_gid if info.st_uid != 0 else DEFAULT_UID
        return f"{uid}:{gid}"

    def _run_sync(
        self, command: str, worktree: Path, timeout: float, writable: bool, run_id: str
    ) -> tuple[int, bytes, bool]:
        limits = self._limits
        memory = f"{limits.memory_mb}m"
        env = {**cache_env("/tmp"), "PATH": CONTAINER_PATH}  # noqa: S108 - container tmpfs
        try:
            container: Any = self._client.containers.create(
                self._image,
                command=["/bin/sh", "-c", command],
                name=f"mosaic-gate-{run_id[:12]}",
                hostname="gates",
                user=self._user(worktree),
                working_dir=WORKSPACE,
                environment=env,
                labels={LABEL_COMPONENT: "gates", LABEL_RUN: run_id},
                mounts=[Mount(WORKSPACE, str(worktree), type="bind", read_only=not writable)],
                read_only=True,
                tmpfs={"/tmp": "rw,nosuid,nodev,size=512m,mode=1777"},  # noqa: S108
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
                network_mode="none",
                ipc_mode="private",
                init=True,
                stop_signal="SIGKILL",
                detach=True,
            )
        except ImageNotFound as exc:
            raise RunnerError(f"gates image {self._image} not found") from exc
        except (DockerException, OSError) as exc:
            self._remove_by_run_id(run_id)
            raise RunnerError(f"cannot create a gate container: {exc}") from exc
        timed_out = False
        try:
            container.start()
            try:
                status = container.wait(timeout=timeout)
                code = int(status.get("StatusCode", -1))
            except Exception:  # requests' ReadTimeout: the command outlived its limit
                timed_out = True
                code = -9
                with contextlib.suppress(DockerException):
                    container.kill(signal="SIGKILL")
            output: bytes = container.logs(stdout=True, stderr=True)
            return code, output, timed_out
        except DockerException as exc:
            raise RunnerError(f"gate container failed: {exc}") from exc
        finally:
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True, v=True)

    def _remove_by_run_id(self, run_id: str) -> None:
        with contextlib.suppress(DockerException):
            for info in self._client.api.containers(
                all=True, filters={"label": f"{LABEL_RUN}={run_id}"}
            ):
                with contextlib.suppress(NotFound, APIError):
                    self._client.api.remove_container(info["Id"], force=True, v=True)


def docker_client(timeout: float) -> docker.DockerClient:
    """A client from the environment (``DOCKER_HOST`` or the local socket)."""
    return docker.from_env(timeout=int(timeout))
