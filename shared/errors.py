"""The one error base of the shared library; each service derives its own from it."""

from __future__ import annotations


class MosaicError(Exception):
    """Base of every error Mosaic raises on purpose.

    ``retryable`` says whether trying the same thing again may succeed; edges translate
    it (nack with delay, HTTP 503) instead of guessing from the type.
    """

    code: str = "error"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class IllegalTransitionError(MosaicError):
    """A lifecycle transition that the state machine does not allow (or lost a race)."""

    code = "illegal_transition"

    def __init__(self, entity: str, current: str | None, target: str):
        super().__init__(f"{entity} cannot go from {current!r} to {target!r}")
        self.current = current
        self.target = target


class NotFoundError(MosaicError):
    """A record that does not exist."""

    code = "not_found"


class BusUnavailableError(MosaicError):
    """NATS or Valkey could not be reached; the caller may retry later."""

    code = "unavailable"
    retryable = True


STALE_ATTEMPT = "stale_attempt"
"""The code of a write refused by fencing; gitops sends it back in its ``Failure``."""


class StaleAttemptError(MosaicError):
    """A write of an attempt that is no longer the task's current one (a fencing token
    older than the record's ``attempts``): another spawner owns the task now, so this
    attempt must stop and write nothing more, not even its own failure."""

    code = STALE_ATTEMPT

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def is_stale(exc: BaseException) -> bool:
    """Whether ``exc`` says the attempt was fenced off (raised here or by a service)."""
    return isinstance(exc, MosaicError) and exc.code == STALE_ATTEMPT
