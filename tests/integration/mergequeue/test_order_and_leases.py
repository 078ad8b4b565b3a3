"""The merge queue's order and leases against a real Valkey (contract of MergeQueue)."""

from __future__ import annotations

import asyncio

import pytest

from services.spawner.mergequeue import MergeQueue
from shared.store import StateStore

pytestmark = pytest.mark.integration


def _queue(store: StateStore, lease_s: float = 30.0) -> MergeQueue:
    return MergeQueue(store, lease_s=lease_s, poll_s=0.05)


async def test_positions_follow_arrival_and_leaving_moves_everyone_up(store: StateStore) -> None:
    queue = _queue(store)
    key = queue.queue_key("/srv/repo", "main")
    for agent in ("a", "b", "c"):
        await queue.join(key, agent)
    assert [await queue.position(key, agent) for agent in ("a", "b", "c")] == [1, 2, 3]
    assert await queue.join(key, "b") == 2  # joining again keeps the place
    await queue.leave(key, "a")
    assert [await queue.position(key, agent) for agent in ("a", "b", "c")] == [0, 1, 2]
    await queue.leave(key, "a")  # idempotent
    assert await queue.entries(key) == ["b", "c"]


async def test_queues_are_per_repository_and_base(store: StateStore) -> None:
    queue = _queue(store)
    one, other_base, other_repo = (
        queue.queue_key("/srv/repo", "main"),
        queue.queue_key("/srv/repo", "release"),
        queue.queue_key("/srv/other", "main"),
    )
    assert len({one, other_base, other_repo}) == 3
    await queue.join(one, "x")
    await queue.join(other_base, "y")
    await queue.join(other_repo, "z")
    assert [await queue.position(k, a) for k, a in ((one, "x"), (other_base, "y"),
                                                    (other_repo, "z"))] == [1, 1, 1]  # fmt: skip


async def test_a_holder_whose_lease_expired_is_dropped_and_the_next_goes_first(
    store: StateStore,
) -> None:
    queue = _queue(store, lease_s=0.6)
    key = queue.queue_key("/srv/repo", "main")
    await queue.join(key, "dead")  # its spawner died: nobody renews
    await queue.join(key, "alive")
    assert await queue.position(key, "alive") == 2
    for _ in range(8):  # the live one keeps renewing, the dead one does not
        await asyncio.sleep(0.1)
        assert await queue.renew("alive") is True
    assert await queue.position(key, "alive") == 1
    assert await queue.entries(key) == ["alive"]
    assert await queue.renew("dead") is False


async def test_turn_waits_in_order_and_renews_while_holding(store: StateStore) -> None:
    queue = _queue(store, lease_s=0.6)
    key = queue.queue_key("/srv/repo", "main")
    order: list[str] = []
    seen: dict[str, list[int]] = {"first": [], "second": []}

    async def merge(agent: str, hold_s: float) -> None:
        async def show(position: int) -> None:
            seen[agent].append(position)

        async with queue.turn(key, agent, show):
            order.append(f"{agent} in")
            await asyncio.sleep(hold_s)  # longer than the lease: the heartbeat keeps it
            order.append(f"{agent} out")

    first = asyncio.create_task(merge("first", 1.0))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(merge("second", 0.0))
    await asyncio.gather(first, second)
    assert order == ["first in", "first out", "second in", "second out"]
    assert seen == {"first": [1], "second": [2, 1]}
    assert await queue.entries(key) == []


async def test_a_cancelled_waiter_leaves_the_queue(store: StateStore) -> None:
    queue = _queue(store)
    key = queue.queue_key("/srv/repo", "main")
    await queue.join(key, "holder")

    async def wait() -> None:
        async def show(position: int) -> None:
            return None

        async with queue.turn(key, "waiter", show):
            raise AssertionError("never its turn while the holder holds")

    task = asyncio.create_task(wait())
    await asyncio.sleep(0.2)
    assert await queue.position(key, "waiter") == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await queue.entries(key) == ["holder"]
