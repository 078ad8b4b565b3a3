"""The one retry delay every retry loop uses: exponential, capped, jittered.

Jitter spreads the retries of many callers that failed together (a restarted server,
a dropped connection) so they do not all come back at the same instant.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float = 0.2) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1 for the first failure):
    ``base * 2**(attempt-1)``, at most ``cap``, times a random factor in
    ``[1 - jitter, 1 + jitter]``."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    delay = min(base * 2.0 ** min(attempt - 1, 62), cap)
    return delay * (1.0 - jitter + 2.0 * jitter * random.random())
