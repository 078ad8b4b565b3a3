"""The spawner's admission control: tasks are admitted only while dependencies keep up."""

from __future__ import annotations

import asyncio

import pytest

from services.spawner.admission import Admission


async def test_admits_up_to_the_limit_then_waits_for_room() -> None:
    admission = Admission(100, initial=2)
    first, second = await admission.admit(), await admission.admit()
    waiting = asyncio.ensure_future(admission.admit())
    await asyncio.sleep(0.05)
    assert not waiting.done(), "a third task is admitted while two have not been served"
    with admission.admitted(first):
        async with admission.track():
            assert admission.in_flight == 2, "a task in its first request counts once"
            await asyncio.sleep(0.05)
            assert not waiting.done()
    third = await asyncio.wait_for(waiting, 1)  # the first task's request was answered
    assert admission.in_flight == 2
    second.close()
    third.close()
    assert admission.in_flight == 0


async def test_quick_answers_raise_the_limit_up_to_the_maximum() -> None:
    admission = Admission(4, initial=2, target_s=5)
    for _ in range(50):
        async with admission.track():
            pass
    assert admission.limit == 4


async def test_a_slow_answer_cuts_the_limit_once_per_target() -> None:
    admission = Admission(100, initial=20, target_s=0.05, decrease=0.5)

    async def slow() -> None:
        async with admission.track():
            await asyncio.sleep(0.06)

    await asyncio.gather(slow(), slow(), slow())  # one slow burst: counted once
    assert admission.limit == 10
    await slow()  # a later one cuts again
    assert admission.limit == 5


async def test_a_request_without_answer_cuts_the_limit_and_is_not_hidden() -> None:
    admission = Admission(100, initial=10, decrease=0.5)
    with pytest.raises(TimeoutError):
        async with admission.track():
            raise TimeoutError("no answer on mosaic.gitops.worktree.create")
    assert admission.limit == 5
    assert admission.in_flight == 0


async def test_gates_checks_count_in_flight_but_neither_length_nor_failure_cuts() -> None:
    admission = Admission(100, initial=3, target_s=0.01)
    async with admission.track(signal=False):
        await asyncio.sleep(0.03)
        assert admission.in_flight == 1
    with pytest.raises(TimeoutError):
        async with admission.track(signal=False):
            raise TimeoutError("no answer on mosaic.gates.check")
    assert admission.limit == 3
    assert admission.in_flight == 0


async def test_a_stopped_agent_does_not_cut_the_limit() -> None:
    admission = Admission(100, initial=4, target_s=0.01)
    started = asyncio.Event()

    async def request() -> None:
        async with admission.track():
            started.set()
            await asyncio.sleep(10)

    pending = asyncio.ensure_future(request())
    await started.wait()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert admission.limit == 4
    assert admission.in_flight == 0


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="decrease"):
        Admission(10, decrease=1.5)
