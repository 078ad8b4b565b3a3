"""The one retry delay (shared.backoff): doubling, capped, jittered within its band."""

from __future__ import annotations

import pytest

from shared.backoff import backoff_delay


def test_doubles_from_base_within_the_jitter_band() -> None:
    for attempt, middle in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)):
        delays = [backoff_delay(attempt, base=1.0, cap=100.0, jitter=0.2) for _ in range(200)]
        assert min(delays) >= middle * 0.8
        assert max(delays) <= middle * 1.2
        assert max(delays) - min(delays) > 0  # jittered: callers do not retry in step


def test_capped_even_for_huge_attempt_numbers() -> None:
    assert backoff_delay(10_000, base=2.0, cap=300.0, jitter=0.0) == 300.0


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(0, base=1.0, cap=1.0)
