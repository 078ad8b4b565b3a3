"""Whether this spawner can run agents, and the heartbeat that tells the gateway.

At start the spawner works out its sandbox (``sandbox_factory``, which never falls back
to something weaker) and its model provider (never ``scripted`` unless asked for). If
either is missing it still starts, takes no task, and says why in its capability record
(``shared.spawners``), so ``POST /agents/spawn`` answers 503 naming what to install or
set instead of queueing work no spawner will take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from shared.messages.base import utcnow
from shared.messages.spawners import SpawnerCapability
from shared.sandbox.base import SandboxError, SandboxFactory
from shared.sandbox.select import sandbox_factory
from shared.sandbox.settings import SandboxSettings
from shared.settings import ModelSettings
from shared.spawners import SpawnerRegistry

log = logging.getLogger(__name__)


def environment_of(kind: str, image: str | None) -> str:
    """A short description of what an agent's commands run on, for records and /health.

    ``image`` is the image a docker sandbox runs (a built environment's or the default
    sandbox image); the other backends run the host's own tools.
    """
    if kind == "docker":
        return f"image {image}" if image else "image (backend default)"
    if kind == "bwrap":
        return "host tools (bwrap)"
    if kind == "none":
        return "host tools (no sandbox)"
    return f"{kind} sandbox"


@dataclass
class Readiness:
    """What this spawner found at start: a sandbox factory and a model, or why not."""

    factory: SandboxFactory | None
    model: ModelSettings
    default_image: str | None
    problems: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=utcnow)

    @property
    def ready(self) -> bool:
        """True when agents can run here (a sandbox and a model)."""
        return self.factory is not None and not self.problems

    def capability(self, instance: str, slots: int) -> SpawnerCapability:
        """The record other components read (no secret in it: never the key)."""
        factory = self.factory
        return SpawnerCapability(
            instance=instance,
            ready=self.ready,
            problems=list(self.problems),
            sandbox=factory.kind if factory else None,
            unsafe=bool(factory and factory.unsafe),
            environment=environment_of(factory.kind, self.default_image) if factory else None,
            provider=self.model.provider(),
            model=self.model.model_name(),
            slots=slots if self.ready else 0,
            started_at=self.started_at,
            expires_at=self.started_at,
        )


async def assess(
    model: ModelSettings, sandbox: SandboxSettings, given: SandboxFactory | None = None
) -> Readiness:
    """Find this spawner's sandbox and model; every problem found, not just the first."""
    problems: list[str] = []
    factory = given
    if factory is None:
        try:
            factory = await sandbox_factory(sandbox)
        except SandboxError as exc:
            problems.append(f"no sandbox: {exc.message}")
        except Exception as exc:  # a backend's own failure: still a reason, never a crash
            log.exception("choosing the sandbox failed")
            problems.append(f"no sandbox: {type(exc).__name__}: {exc}")
    model_problem = model.problem()
    if model_problem is not None:
        problems.append(model_problem)
    image = sandbox.image if factory is not None and factory.kind == "docker" else None
    return Readiness(factory=factory, model=model, default_image=image, problems=problems)


class Heartbeat:
    """Keeps this spawner's capability record fresh until ``stop`` withdraws it."""

    def __init__(
        self,
        registry: SpawnerRegistry,
        capability: SpawnerCapability,
        interval_s: float,
        ttl_s: float,
    ) -> None:
        self.registry = registry
        self.capability = capability
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        """Write the record once (at start: before the health probe answers)."""
        self.capability = await self.registry.publish(self.capability, self.ttl_s)

    def start(self) -> None:
        """Refresh the record every ``interval_s`` in the background."""
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(Exception):  # a dead spawner's records are swept here
            await self.registry.prune(expired_for_s=max(self.ttl_s * 20, 300.0))
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.beat()
            except Exception:  # Valkey away: the record expires, spawn answers accordingly
                log.warning("capability heartbeat failed", exc_info=True)

    async def stop(self) -> None:
        """Stop refreshing and remove the record (a clean stop is not a dead spawner)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.registry.withdraw(self.capability.instance)
        except Exception:
            log.warning("could not withdraw the capability record", exc_info=True)
