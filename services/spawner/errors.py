"""Spawner errors; ``retryable`` decides between a retry with backoff and ``failed``."""

from __future__ import annotations

from shared.errors import MosaicError
from shared.messages.base import Failure


class SpawnerError(MosaicError):
    """Base of the spawner's own errors."""

    code = "spawner_error"


class StepFailedError(SpawnerError):
    """A remote step (gitops, gates) answered with a failure."""

    def __init__(self, step: str, failure: Failure) -> None:
        super().__init__(
            f"{step}: {failure.message}", code=failure.code, retryable=failure.retryable
        )
        self.step = step
        self.failure = failure


class AgentKilledError(SpawnerError):
    """The agent was killed while this spawner ran it."""

    code = "killed"


class BudgetExhaustedError(SpawnerError):
    """The task's budget, or the deployment's daily one, is reached: the agent stops at
    once and the task ends ``failed`` with reason ``budget`` (never retried)."""

    code = "budget"
    retryable = False


def store_unavailable(exc: Exception) -> MosaicError:
    """A Valkey error inside an attempt, as the retryable failure it is (not a crash)."""
    return MosaicError(f"Valkey unreachable: {type(exc).__name__}: {exc}", code="unavailable",
                       retryable=True)  # fmt: skip
