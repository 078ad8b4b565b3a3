"""The one retry delay (shared.backoff): doubling, capped, jittered within its band."""

from __future__ import annotations

import pytest

from shared.backoff import ONCE, RetryPolicy, backoff_delay


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


class Flaky(Exception):
    """A failure the policy below tries again."""


async def test_retry_policy_tries_again_only_what_it_names() -> None:
    calls: list[int] = []

    async def step() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Flaky("not yet")
        return "done"

    policy = RetryPolicy(attempts=3, base_s=0.001, cap_s=0.001,
                         retry_on=lambda exc: isinstance(exc, Flaky))  # fmt: skip
    assert await policy.run(step, what="flaky step") == "done"
    assert len(calls) == 3


async def test_retry_policy_gives_up_after_its_attempts_and_raises_others_at_once() -> None:
    calls: list[BaseException] = []

    async def step() -> None:
        error = Flaky("again") if len(calls) % 2 == 0 else ValueError("other")
        calls.append(error)
        raise error

    flaky = RetryPolicy(attempts=2, base_s=0.001, cap_s=0.001,
                        retry_on=lambda exc: isinstance(exc, Flaky))  # fmt: skip
    with pytest.raises(ValueError, match="other"):  # the second try's error is not retried
        await flaky.run(step, what="step")
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(Flaky):
        await ONCE.run(step, what="step")
    assert len(calls) == 1
    with pytest.raises(ValueError, match="at least once"):
        RetryPolicy(attempts=0)
