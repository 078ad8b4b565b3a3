"""Warm docker sandboxes: containers made before their agent, so a spawn need not wait
for ``docker create`` + ``start``.

A container's mounts are fixed when it is made, and an agent's repository does not exist
before gitops makes it. So a warm container mounts an empty *slot* directory beside the
agent repositories of one repository cache (``<root>/.warm-<sandbox id>``; gitops lists
no dot entry), and an agent *places* it before asking for its repository: the slot is
renamed to the repository's path (``agent-<agentId>-<taskId>``). A bind mount follows its
directory through a rename, and gitops makes the repository in that empty directory
(``services.gitops.worktrees``), so the container sees it at ``/workspace``. When the
sandbox is asked for, the agent *claims* the container: renamed to
``mosaic-warm.<agentId>.<sandbox>`` (its labels cannot change; ``containers.agent_of``
reads the name), the directory handed to the sandbox user, done.

Pools are kept per *shape*: all of a spec but its agent (the repositories' directory,
image, read-only mounts, network, limits, env, owner, deployment), learned from the last
agent of that directory, so a repository's second agent on is warm. A shape keeps up to
``size`` idle containers, all shapes together at most ``limit``, each for ``max_age_s``
(then replaced when next needed; the reaper removes one whose pool is gone at twice
that). A placed container whose spec turns out different (the environment changed) is
removed and the sandbox made cold: a pool never changes what an agent runs in.
``drain`` empties the pool (kill-all; shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from shared.sandbox.base import Limits, SandboxSpec
from shared.sandbox.containers import SLOT_PREFIX

log = logging.getLogger(__name__)

WARM_IDLE = Gauge("mosaic_sandbox_warm_idle", "Warm sandbox containers waiting for an agent")
WARM_CLAIMS = Counter(
    "mosaic_sandbox_warm_claims_total",
    "Agent sandboxes by how they were had: hit (warm), miss (none ready), mismatch "
    "(the placed one did not fit the agent's spec)",
    ["result"],
)


MAKING_AT_ONCE = 2
"""Warm containers made at a time: a burst of claims refills behind the agents it
started, not beside them (10 agents on two cores: their first ``write_file`` took
1.4-1.7 s beside ten creations at once, 0.6-0.7 s beside two)."""


class ContainerMaker(Protocol):
    """What the pool needs of the docker factory (blocking work in its threads)."""

    async def make_warm(self, spec: SandboxSpec, sandbox_id: str) -> tuple[str, str]:
        """A started container for ``spec`` (its worktree the slot): (id, ``uid:gid``)."""
        ...

    async def hand_over(self, container_id: str, sandbox_id: str, spec: SandboxSpec) -> None:
        """Make a warm container ``spec``'s agent's: its name, its directory's owner."""
        ...

    async def remove(self, container_id: str) -> None:
        """SIGKILL and remove the container (gone already is fine)."""
        ...


@dataclass(frozen=True)
class Shape:
    """All of an agent's ``SandboxSpec`` that a container is made with, but the agent."""

    root: Path
    image: str | None
    readonly: tuple[Path, ...]
    network: bool
    limits: Limits
    env: tuple[tuple[str, str], ...]
    owner: str
    deployment: str | None

    @classmethod
    def of(cls, spec: SandboxSpec) -> Shape:
        """The shape of an agent's spec (its repository's directory is its root)."""
        return cls(
            root=spec.worktree.parent,
            image=spec.image,
            readonly=spec.readonly,
            network=spec.network,
            limits=spec.limits,
            env=spec.env,
            owner=spec.owner,
            deployment=spec.deployment,
        )

    def spec_for(self, slot: Path) -> SandboxSpec:
        """The spec a warm container of this shape is made from (no agent yet)."""
        return SandboxSpec(
            agent_id="",
            task_id="",
            worktree=slot,
            network=self.network,
            limits=self.limits,
            owner=self.owner,
            deployment=self.deployment,
            image=self.image,
            env=self.env,
            readonly=self.readonly,
        )


@dataclass(frozen=True)
class Warm:
    """One warm container and the slot directory it mounts (until placed)."""

    container_id: str
    sandbox_id: str
    user: str
    slot: Path
    made_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Placed:
    """An agent's repository path, expected by ``claim``; ``warm`` there if one was."""

    shape: Shape | None
    warm: Warm | None


class WarmPool:
    """Warm containers by shape; ``place`` then ``claim`` (or ``release``) per agent."""

    def __init__(self, maker: ContainerMaker, *, size: int, limit: int, max_age_s: float) -> None:
        self._maker = maker
        self.size, self.limit, self.max_age_s = size, limit, max_age_s
        self._shapes: dict[Path, Shape] = {}
        self._idle: dict[Shape, list[Warm]] = {}
        self._making: dict[Shape, int] = {}
        self._placed: dict[Path, _Placed] = {}
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.Task[None] | None = None
        self._makers = asyncio.Semaphore(MAKING_AT_ONCE)

    def start(self) -> None:
        """Remove idle containers as they pass ``max_age_s`` (replaced when next needed)."""
        self._expiry = asyncio.get_running_loop().create_task(self._expire_forever())

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(self.max_age_s / 4)
            now = time.monotonic()
            for kept in self._idle.values():
                for warm in [w for w in kept if now - w.made_at >= self.max_age_s]:
                    kept.remove(warm)
                    self._discard(warm, slot=warm.slot)
            WARM_IDLE.set(self.idle())

    def idle(self) -> int:
        """Warm containers waiting now."""
        return sum(len(kept) for kept in self._idle.values())

    async def place(self, worktree: Path) -> bool:
        """Before the agent's repository exists: put a warm container's slot at
        ``worktree`` (where gitops will make it); True when one was there to put."""
        shape = self._shapes.get(worktree.parent)
        warm = self._take(shape) if shape is not None else None
        if shape is not None:
            self._refill(shape)
        # known before the rename: a cancelled placing is released like any other
        self._placed[worktree] = _Placed(shape if warm else None, warm)
        if warm is None:
            return False
        try:
            await asyncio.to_thread(os.rename, warm.slot, worktree)
        except OSError as exc:  # the path exists (a retry reuses its repository)
            log.info("warm sandbox not placed at %s: %s", worktree, exc)
            self._placed[worktree] = _Placed(None, None)
            self._discard(warm, slot=warm.slot)
            return False
        return True

    def expect(self, worktree: Path) -> None:
        """An agent's repository is at ``worktree`` (nothing placed there: its first agent,
        or a miss): its ``claim`` learns the shape, so the next agent there can be warm."""
        self._placed.setdefault(worktree, _Placed(None, None))

    async def claim(self, spec: SandboxSpec) -> Warm | None:
        """The warm container placed for ``spec``'s worktree, now the agent's; None when
        none was placed (or it does not fit ``spec``: then it is removed)."""
        placed = self._placed.pop(spec.worktree, None)
        if placed is None:
            return None  # not an agent's placed worktree (a gate's sandbox)
        shape = Shape.of(spec)
        self._shapes[shape.root] = shape
        warm = placed.warm
        if warm is None:
            WARM_CLAIMS.labels("miss").inc()
            self._refill(shape)
            return None
        if placed.shape != shape:
            WARM_CLAIMS.labels("mismatch").inc()
            log.info("warm sandbox does not fit the agent's spec: made cold instead")
            self._discard(warm, slot=None)
            self._refill(shape)
            return None
        try:
            await self._maker.hand_over(warm.container_id, warm.sandbox_id, spec)
        except Exception as exc:  # removed under us (the reaper, a person): made cold
            log.warning("warm sandbox %s could not be taken: %s", warm.container_id[:12], exc)
            self._discard(warm, slot=None)
            WARM_CLAIMS.labels("miss").inc()
            return None
        except BaseException:
            self._discard(warm, slot=None)
            raise
        WARM_CLAIMS.labels("hit").inc()
        return warm

    def release(self, worktree: Path) -> None:
        """The agent will not claim what was placed at ``worktree`` (its attempt ended
        first): its container goes; the directory is its repository's, gitops' to remove."""
        placed = self._placed.pop(worktree, None)
        if placed is not None and placed.warm is not None:
            self._discard(placed.warm, slot=None)

    async def drain(self) -> int:
        """Remove every idle container (and any still being made); how many."""
        self._generation += 1
        idle = [warm for kept in self._idle.values() for warm in kept]
        self._idle.clear()
        WARM_IDLE.set(0)
        await asyncio.gather(*(self._remove(warm, warm.slot) for warm in idle))
        return len(idle)

    async def close(self) -> None:
        """Drain, and wait for what is being made or removed."""
        await self.drain()
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _take(self, shape: Shape) -> Warm | None:
        kept = self._idle.get(shape, [])
        now = time.monotonic()
        while kept:
            warm = kept.pop(0)
            if now - warm.made_at < self.max_age_s:
                WARM_IDLE.set(self.idle())
                return warm
            self._discard(warm, slot=warm.slot)  # too old: replaced below
        WARM_IDLE.set(self.idle())
        return None

    def _refill(self, shape: Shape) -> None:
        have = len(self._idle.get(shape, [])) + self._making.get(shape, 0)
        room = self.limit - self.idle() - sum(self._making.values())
        for _ in range(max(0, min(self.size - have, room))):
            self._making[shape] = self._making.get(shape, 0) + 1
            self._spawn(self._make(shape, self._generation))

    async def _make(self, shape: Shape, generation: int) -> None:
        sandbox_id = uuid.uuid4().hex
        slot = shape.root / f"{SLOT_PREFIX}{sandbox_id}"
        try:
            async with self._makers:
                await asyncio.to_thread(slot.mkdir)
                spec = shape.spec_for(slot)
                container_id, user = await self._maker.make_warm(spec, sandbox_id)
        except Exception as exc:
            log.warning("could not make a warm sandbox: %s", exc)
            with contextlib.suppress(OSError):
                slot.rmdir()
            return
        finally:
            self._making[shape] -= 1
        warm = Warm(container_id, sandbox_id, user, slot)
        if generation != self._generation:  # drained while it was being made
            await self._remove(warm, slot)
            return
        self._idle.setdefault(shape, []).append(warm)
        WARM_IDLE.set(self.idle())

    def _discard(self, warm: Warm, *, slot: Path | None) -> None:
        self._spawn(self._remove(warm, slot))

    async def _remove(self, warm: Warm, slot: Path | None) -> None:
        try:
            await self._maker.remove(warm.container_id)
        except Exception as exc:  # the reaper removes it later
            log.warning("could not remove warm sandbox %s: %s", warm.container_id[:12], exc)
        if slot is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(slot.rmdir)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
