"""The bounded memo of facts that never change (``shared.memo``)."""

from __future__ import annotations

import functools

import pytest

from shared.memo import Memo


def test_an_answer_is_made_once_and_a_failure_not_kept() -> None:
    memo: Memo[str, int | None] = Memo(8)
    made: list[str] = []

    def make(key: str, value: int | None) -> int | None:
        made.append(key)
        return value

    assert memo.remembered("a", lambda: make("a", 1)) == 1
    assert memo.remembered("a", lambda: make("a", 2)) == 1
    assert memo.remembered("none", lambda: make("none", None)) is None
    assert memo.remembered("none", lambda: make("none", 3)) is None  # None is an answer too
    assert made == ["a", "none"]

    def fail() -> int:
        raise ValueError("not an answer")

    with pytest.raises(ValueError, match="not an answer"):
        memo.remembered("bad", fail)
    assert memo.remembered("bad", lambda: 5) == 5


def test_the_oldest_answers_go_first_beyond_the_limit() -> None:
    memo: Memo[int, int] = Memo(3)
    for key in range(5):
        memo.remembered(key, functools.partial(int, key * 10))
    assert len(memo) == 3
    assert memo.remembered(0, lambda: -1) == -1  # dropped, made again
    assert memo.remembered(4, lambda: -1) == 40  # kept


def test_a_memo_keeps_at_least_one_answer() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Memo(0)
