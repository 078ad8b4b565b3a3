"""A bounded memo for facts that never change once known: a commit's gitlinks, its
environment declaration, a branch name git accepted. Each was asked of a git process
again by every agent of a repository (docs/performance.md, "Fewer git processes")."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """Up to ``limit`` answers, the oldest dropped first; safe across threads (gitops
    runs git in a pool). What ``make`` raises is not remembered: only answers are."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a memo keeps at least one answer, not {limit}")
        self._limit = limit
        self._kept: dict[K, V] = {}
        self._lock = threading.Lock()

    def remembered(self, key: K, make: Callable[[], V]) -> V:
        """The answer kept for ``key``, else ``make()``'s (kept from now on). ``make``
        runs outside the lock: two threads may both make the same answer once."""
        with self._lock:
            if key in self._kept:
                return self._kept[key]
        value = make()
        with self._lock:
            self._kept[key] = value
            while len(self._kept) > self._limit:
                del self._kept[next(iter(self._kept))]
        return value

    def __len__(self) -> int:
        return len(self._kept)
