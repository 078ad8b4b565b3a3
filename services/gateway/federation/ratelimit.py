"""A per-source token bucket for requests to ``/federation`` that prove nothing.

A request whose envelope does not parse, is not for us, names an unknown sender, or
fails its signature or clock window costs its source (the client address) one token;
an empty bucket answers 429 before the body is read. Such requests are counted in a
metric and logged, never written to the durable audit stream (anyone can send them).
Verified peers spend no tokens. In-process: each gateway process keeps its own buckets.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from shared.federation.errors import FederationError

_MAX_SOURCES = 10_000
"""Buckets kept at most (least recently used forgotten first)."""


class RateLimitedError(FederationError):
    """This source sent too many unverifiable requests; try again later."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceBuckets:
    """One bucket of ``burst`` tokens per source, refilled at ``per_second``."""

    def __init__(self, burst: int, per_second: float) -> None:
        self.burst = burst
        self.per_second = per_second
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, source: str, now: float) -> float:
        tokens, at = self._buckets.get(source, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.per_second)

    def check(self, source: str) -> None:
        """``RateLimitedError`` when ``source`` has no token left (nothing is spent)."""
        level = self._level(source, time.monotonic())
        if level < 1.0:
            wait = math.ceil((1.0 - level) / self.per_second)
            raise RateLimitedError(
                f"too many unverifiable federation requests from {source}; retry in {wait}s",
                wait,
            )

    def spend(self, source: str) -> None:
        """Take one token from ``source`` (after an unverifiable request)."""
        now = time.monotonic()
        self._buckets[source] = (max(self._level(source, now) - 1.0, 0.0), now)
        self._buckets.move_to_end(source)
        while len(self._buckets) > _MAX_SOURCES:
            self._buckets.popitem(last=False)
