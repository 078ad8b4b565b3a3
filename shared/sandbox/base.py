"""The sandbox contract: every tool call of an agent goes through one of these.

The model loop runs in the spawner; file edits and commands run in the sandbox, so API
keys never enter it. Paths given to a sandbox are relative to the worktree root; an
implementation must refuse any path that resolves outside it (``..``, absolute paths,
symlinks pointing out) with ``SandboxPathError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shared.errors import MosaicError


class SandboxError(MosaicError):
    """A sandbox could not be created or used."""

    code = "sandbox_error"


class SandboxPathError(SandboxError):
    """A path that escapes the worktree; reported to the model as a tool error."""

    code = "path_escape"


class SandboxUnavailableError(SandboxError):
    """No sandbox of the asked kind can run here; the message names what to install or set.

    Never answered by running the agent somewhere weaker: with ``MOSAIC_SANDBOX=auto``
    and neither Docker nor bubblewrap working, no agent starts.
    """

    code = "sandbox_unavailable"


class SandboxGoneError(SandboxError):
    """The sandbox vanished under the agent (its container removed or stopped from outside).

    Never a tool result: whatever the model does next would not happen (a write would be
    lost and the finish would commit the base). The attempt ends and is retried on a
    fresh sandbox.
    """

    code = "sandbox_gone"
    retryable = True


@dataclass(frozen=True)
class Limits:
    """Resource bounds for one sandbox."""

    memory_mb: int = 1024
    cpus: float = 1.0
    pids: int = 256
    cpu_seconds: int = 3600
    file_size_mb: int = 256
    tmp_size_mb: int = 256


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandbox is made for: one agent, its worktree, its limits."""

    agent_id: str
    task_id: str
    worktree: Path
    network: bool = False
    limits: Limits = Limits()
    owner: str = "mosaic"
    deployment: str | None = None
    """The Mosaic system the agent belongs to (``shared.deployment``); labels its container."""
    image: str | None = None
    """The environment image (docker) the sandbox runs from; None: the backend's default."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra non-secret environment (the repository's declared ``env``, gate caches)."""
    writable: bool = True
    """Whether commands may write the worktree (gates that only read mount it read-only)."""
    readonly: tuple[Path, ...] = ()
    """Host directories shown read-only at the same path (the cache objects the agent's
    repository borrows through alternates); each must be an existing absolute directory."""


def readonly_dirs(spec: SandboxSpec) -> list[str]:
    """``spec.readonly`` checked: absolute, existing, real directories (a link would make
    the backend mount what it points to); ``SandboxError`` naming the bad one."""
    found = []
    for path in spec.readonly:
        if not path.is_absolute() or path.is_symlink() or not path.is_dir():
            raise SandboxError(f"read-only mount {path} is not an existing absolute directory")
        found.append(str(path))
    return found


@dataclass(frozen=True)
class ExecResult:
    """A finished command. ``output`` is stdout and stderr interleaved, maybe truncated."""

    exit_code: int
    output: str
    timed_out: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class DirEntry:
    """One entry of ``list_dir``."""

    name: str
    is_dir: bool
    size: int


class Sandbox(Protocol):
    """One agent's isolated place to run tools; ``close`` is idempotent and always safe."""

    kind: str
    spec: SandboxSpec

    async def exec(self, command: str, *, timeout: float, max_output: int = 64_000) -> ExecResult:
        """Run a shell command in the worktree root; never raises for a non-zero exit."""
        ...

    async def read_file(self, path: str, *, max_bytes: int) -> bytes:
        """Read up to ``max_bytes`` of a file inside the worktree."""
        ...

    async def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file inside the worktree (parents created)."""
        ...

    async def list_dir(self, path: str) -> list[DirEntry]:
        """The entries of a directory inside the worktree."""
        ...

    async def kill(self) -> None:
        """Stop everything running in the sandbox at once (SIGKILL, no grace)."""
        ...

    def kill_now(self) -> None:
        """Begin ``kill`` from synchronous code, without waiting (a kill order's callback
        calls it for every agent before any run unwinds, so a kill-all stops all sandboxes
        at once instead of one after another as their runs get the event loop)."""
        ...

    async def close(self) -> None:
        """Kill and release everything (container removed, processes reaped)."""
        ...


class SandboxFactory(Protocol):
    """Makes sandboxes of one kind."""

    kind: str
    unsafe: bool
    """True only for ``none`` (bare host processes): shown as unsafe everywhere."""

    async def create(self, spec: SandboxSpec) -> Sandbox:
        """A ready sandbox; on failure nothing is left behind."""
        ...
