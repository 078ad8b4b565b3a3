"""The one retry delay every retry loop uses (exponential, capped, jittered), and the
retry policy a step names beside its code.

Jitter spreads the retries of many callers that failed together (a restarted server,
a dropped connection) so they do not all come back at the same instant.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float = 0.2) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1 for the first failure):
    ``base * 2**(attempt-1)``, at most ``cap``, times a random factor in
    ``[1 - jitter, 1 + jitter]``."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    delay = min(base * 2.0 ** min(attempt - 1, 62), cap)
    return delay * (1.0 - jitter + 2.0 * jitter * random.random())


@dataclass(frozen=True)
class RetryPolicy:
    """How often a step is tried, and how long to wait between tries.

    A step names its policy beside its code (as a Temporal activity does), so the reader
    sees at once whether a failure is tried again here or handed up. Only errors for
    which ``retry_on`` answers True are tried again; anything else is raised at once.
    """

    attempts: int = 1
    """Tries in all (1: no retry here; the caller's own policy decides)."""
    base_s: float = 0.5
    cap_s: float = 10.0
    retry_on: Callable[[BaseException], bool] = field(default=lambda _exc: False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a step is tried at least once, got attempts={self.attempts}")

    async def run(self, step: Callable[[], Awaitable[T]], *, what: str) -> T:
        """``step()``, tried again after a backoff delay while the policy allows it."""
        for attempt in range(1, self.attempts + 1):
            try:
                return await step()
            except Exception as exc:
                if attempt == self.attempts or not self.retry_on(exc):
                    raise
                log.warning("%s failed (try %d of %d), trying again: %s",
                            what, attempt, self.attempts, exc)  # fmt: skip
                await asyncio.sleep(backoff_delay(attempt, base=self.base_s, cap=self.cap_s))
        raise AssertionError("unreachable: the last try returns or raises")


ONCE = RetryPolicy()
"""Tried once: a failure goes up to the caller (for an attempt, the queue's retry)."""
