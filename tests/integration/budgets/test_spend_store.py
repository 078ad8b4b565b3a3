"""Spend in the real Valkey: one atomic charge per model call (agent, day, all-time, hold),
the daily hold seen by ``held()`` (as the spawn path and the queue ask), resume."""

from __future__ import annotations

import asyncio

import pytest

from shared.errors import StaleAttemptError
from shared.federation.agents import Ownership
from shared.messages.agents import AgentRecord, AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.spend import Spend, TokenUsage
from shared.spending import utc_day
from shared.store import StateStore

pytestmark = pytest.mark.integration


def record(agent_id: str) -> AgentRecord:
    return AgentRecord(
        agent_id=agent_id,
        task_id=f"task-{agent_id}",
        agent_type="worker",
        state=AgentState.SPAWNING,
        task_state=TaskState.PENDING,
        repository="/tmp/r",
        branch="main",
        priority=5,
        gate_profile="standard",
        created_at=utcnow(),
    )


CALL = TokenUsage(
    model="claude-sonnet-4-5",
    input_tokens=10,
    output_tokens=20,
    cache_write_tokens=30,
    cache_read_tokens=40,
)


async def test_a_charge_adds_to_the_agent_the_day_and_the_totals(store: StateStore) -> None:
    await store.create_agent(record("a1"))
    assert (await store.require_agent("a1")).spend == Spend()
    await store.charge("a1", CALL, 0.25, agent_type="worker", limit_usd=None)
    charged = await store.charge("a1", CALL, 0.5, agent_type="reviewer", limit_usd=None)
    expected = Spend(
        usd=0.75,
        input_tokens=20,
        output_tokens=40,
        cache_write_tokens=60,
        cache_read_tokens=80,
    )
    assert charged.spend == expected
    assert (await store.require_agent("a1")).spend == expected
    day = (await store.spend_of_days([utc_day()]))[utc_day()]
    assert day["usd"] == pytest.approx(0.75)
    assert day["cache_read_tokens"] == 80
    assert day["type:worker:usd"] == pytest.approx(0.25)
    assert day["type:reviewer:usd"] == pytest.approx(0.5)
    assert day["model:claude-sonnet-4-5:usd"] == pytest.approx(0.75)
    totals = await store.spend_totals()
    assert totals["usd|claude-sonnet-4-5|worker"] == pytest.approx(0.25)
    assert totals["tokens|claude-sonnet-4-5|reviewer|output_tokens"] == 20
    assert not charged.held
    assert await store.held() is None


async def test_concurrent_charges_lose_nothing(store: StateStore) -> None:
    await store.create_agent(record("b1"))
    await asyncio.gather(
        *(store.charge("b1", CALL, 0.01, agent_type="worker", limit_usd=None) for _ in range(50))
    )
    spend = (await store.require_agent("b1")).spend
    assert spend.output_tokens == 50 * 20
    assert spend.usd == pytest.approx(0.5)


async def test_a_resent_charge_is_counted_once(store: StateStore) -> None:
    await store.create_agent(record("c1"))
    first = await store.charge("c1", CALL, 1.0, agent_type="worker", limit_usd=None,
                               charge_id="op-1")  # fmt: skip
    again = await store.charge("c1", CALL, 1.0, agent_type="worker", limit_usd=None,
                               charge_id="op-1")  # fmt: skip
    assert again == first
    assert (await store.require_agent("c1")).spend.usd == pytest.approx(1.0)


async def test_a_stale_attempt_cannot_charge(store: StateStore) -> None:
    await store.create_agent(record("d1"))
    await store.transition("d1", task_id="task-d1", task=TaskState.ASSIGNED,
                           fields={"attempts": 2})  # fmt: skip
    with pytest.raises(StaleAttemptError):
        await store.charge("d1", CALL, 1.0, agent_type="worker", limit_usd=None, fence=1)
    assert (await store.require_agent("d1")).spend == Spend()


async def test_the_daily_budget_holds_intake_once_and_resume_lifts_it_for_the_day(
    store: StateStore,
) -> None:
    await store.create_agent(record("e1"))
    below = await store.charge("e1", CALL, 0.6, agent_type="worker", limit_usd=1.0)
    assert not below.held
    assert await store.held() is None
    reached = await store.charge("e1", CALL, 0.4, agent_type="worker", limit_usd=1.0)
    assert reached.held
    assert reached.newly_held
    hold = await store.held()
    assert hold is not None
    assert hold["kind"] == "budget"
    assert "daily budget of $1.00 reached" in hold["reason"]
    after = await store.charge("e1", CALL, 0.1, agent_type="worker", limit_usd=1.0)
    assert after.held
    assert not after.newly_held
    assert await store.release_budget()
    assert await store.held() is None
    # spend still counts after the resume, but the day's budget does not hold again
    later = await store.charge("e1", CALL, 5.0, agent_type="worker", limit_usd=1.0)
    assert not later.held
    assert await store.held() is None
    assert later.day_usd == pytest.approx(6.1)


async def test_a_kill_all_is_reported_before_a_budget_hold(store: StateStore) -> None:
    await store.create_agent(record("f1"))
    await store.charge("f1", CALL, 2.0, agent_type="worker", limit_usd=1.0)
    await store.hold_all("stop everything", "http:admin")
    hold = await store.held()
    assert hold is not None
    assert hold["kind"] == "killall"
    assert await store.release_all()
    hold = await store.held()
    assert hold is not None
    assert hold["kind"] == "budget"


async def test_a_federated_agents_spend_counts_for_its_peer(store: StateStore) -> None:
    await store.create_agent(record("g1"))
    await store.create_agent(record("g2"))
    await Ownership(store.redis, store.key()).record("peer-one", "g1")
    await store.charge("g1", CALL, 0.3, agent_type="worker", limit_usd=None)
    await store.charge("g2", CALL, 0.5, agent_type="worker", limit_usd=None)  # our own
    assert await store.peer_spend_today("peer-one") == pytest.approx(0.3)
    assert await store.peer_spend_today("peer-two") == 0.0
