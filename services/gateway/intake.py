"""The checks a spawn passes before anything is stored, remembering for a moment what
does not change from one request to the next.

A burst of spawns on one repository would otherwise ask gitops hundreds of times a
second whether its local path exists. A yes is remembered briefly; a no never is, so a
refusal always names the present reason. Readiness is read every time (one read of the
spawners' heartbeat records): a test or an operator that changes it sees it at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from faststream.nats import NatsBroker

from services.gateway.errors import InvalidInputError
from shared import subjects
from shared.bus import request as ask
from shared.errors import BusUnavailableError
from shared.messages.checks import RepositoryPathFound, RepositoryPathRequested
from shared.spawners import NoSpawnerReadyError, SpawnerRegistry, why_not_ready

PATH_TTL_S = 5.0
"""How long a repository path gitops found is taken as still there. A path removed in
that window fails the agent's worktree creation, which says so."""
PATHS_KEPT = 1024
"""At most this many paths are remembered (a new one evicts the oldest)."""


class RepositoryMissingError(InvalidInputError):
    """A local repository path that does not exist (known before queueing)."""


class IntakeChecks:
    """Whether a spawn may be stored: a spawner can run it, its local path exists."""

    def __init__(
        self,
        spawners: SpawnerRegistry,
        broker: NatsBroker,
        path_timeout_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spawners = spawners
        self._broker = broker
        self._path_timeout_s = path_timeout_s
        self._clock = clock
        self._paths: dict[str, float] = {}

    async def require_ready(self) -> None:
        """``NoSpawnerReadyError`` (503, nothing stored) when spawners run but none can
        run an agent; with no spawner registered at all a task waits in the queue."""
        problem = why_not_ready(await self._spawners.live())
        if problem is not None:
            raise NoSpawnerReadyError(problem)

    async def require_repository(self, path: str) -> None:
        """Ask gitops (any host's: the gateway reads no disk) whether a local repository
        path exists; ``RepositoryMissingError`` when it does not, ``BusUnavailableError``
        (503, not accepted) when no gitops answers: a path nobody could check is not
        taken on trust."""
        now = self._clock()
        if self._paths.get(path, 0.0) > now:
            return
        try:
            found = await ask(
                self._broker,
                subjects.GITOPS_REPOSITORY_EXISTS,
                RepositoryPathRequested(path=path),
                RepositoryPathFound,
                self._path_timeout_s,
            )
        except BusUnavailableError as exc:
            raise BusUnavailableError(
                f"could not check the repository path {path}: no gitops answered "
                f"({exc.message}); task not accepted"
            ) from exc
        if found.error is not None:
            raise RepositoryMissingError("context.repository", found.error.message)
        if not found.exists:
            where = f" on host {found.host}" if found.host else ""
            raise RepositoryMissingError("context.repository", f"no repository at {path}{where}")
        self._paths.pop(path, None)
        if len(self._paths) >= PATHS_KEPT:
            del self._paths[next(iter(self._paths))]
        self._paths[path] = self._clock() + PATH_TTL_S
