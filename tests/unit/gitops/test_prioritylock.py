"""The repository lock serves finishing work (urgent) before queued creations."""

from __future__ import annotations

import asyncio

import pytest

from services.gitops.prioritylock import NORMAL, URGENT, PriorityLock

pytestmark = pytest.mark.unit


async def test_waiters_are_served_by_priority_then_arrival() -> None:
    lock = PriorityLock()
    order: list[str] = []

    async def worker(name: str, priority: int) -> None:
        async with lock.hold(priority):
            order.append(name)
            await asyncio.sleep(0)

    await lock.acquire()
    tasks = [
        asyncio.create_task(worker(n, p))
        for n, p in [
            ("create-1", NORMAL),
            ("create-2", NORMAL),
            ("push-1", URGENT),
            ("remove-1", URGENT),
        ]
    ]
    await asyncio.sleep(0.01)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["push-1", "remove-1", "create-1", "create-2"]
    assert not lock.locked()


async def test_only_one_holder_at_a_time_and_cancelled_waiters_are_skipped() -> None:
    lock = PriorityLock()
    inside = 0
    peak = 0

    async def worker() -> None:
        nonlocal inside, peak
        async with lock.hold():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await lock.acquire()
    doomed = asyncio.create_task(worker())
    others = [asyncio.create_task(worker()) for _ in range(20)]
    await asyncio.sleep(0.01)
    doomed.cancel()
    lock.release()
    await asyncio.gather(*others)
    assert peak == 1
    assert not lock.locked()


async def test_a_waiter_cancelled_as_it_is_handed_the_lock_passes_it_on() -> None:
    lock = PriorityLock()
    await lock.acquire()
    first = asyncio.create_task(lock.acquire())
    second = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    lock.release()  # hands the lock to `first`...
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)  # so `second` gets it
    assert lock.locked()
    lock.release()
    assert not lock.locked()
