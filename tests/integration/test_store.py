"""The Valkey state store against a real valkey-server: atomic transitions and races."""

from __future__ import annotations

import asyncio

import pytest

from shared.errors import IllegalTransitionError, NotFoundError
from shared.messages.agents import AgentEvent, AgentRecord, AgentState, TaskState
from shared.messages.base import utcnow
from shared.store import StateStore

pytestmark = pytest.mark.integration


def make_record(agent_id: str = "a1", task_id: str = "t1") -> AgentRecord:
    return AgentRecord(
        agent_id=agent_id,
        task_id=task_id,
        agent_type="worker",
        state=AgentState.SPAWNING,
        task_state=TaskState.PENDING,
        repository="/tmp/r",
        branch="main",
        priority=5,
        gate_profile="standard",
        created_at=utcnow(),
    )


async def test_create_is_deduplicated_by_task(store: StateStore) -> None:
    assert await store.create_agent(make_record("a1", "t1")) == ("a1", True)
    assert await store.create_agent(make_record("a2", "t1")) == ("a1", False)
    assert await store.get_agent("a2") is None
    assert await store.count_agents() == 1


async def test_full_lifecycle_persists_fields_and_history(store: StateStore) -> None:
    await store.create_agent(make_record())
    await store.transition("a1", task_id="t1", task=TaskState.ASSIGNED)
    started = utcnow()
    await store.transition(
        "a1",
        task_id="t1",
        agent=AgentState.RUNNING,
        task=TaskState.EXECUTING,
        fields={"started_at": started},
    )
    event = await store.transition(
        "a1",
        task_id="t1",
        agent=AgentState.COMPLETED,
        task=TaskState.COMPLETED,
        fields={"pushed_branch": "mosaic/x"},
    )
    assert event.previous == "running"
    assert event.state == "completed"
    record = await store.require_agent("a1")
    assert record.state == AgentState.COMPLETED
    assert record.task_state == TaskState.COMPLETED
    assert record.started_at == started
    assert record.pushed_branch == "mosaic/x"
    history = await store.events("a1")
    assert [e.seq for e in history] == [1, 2, 3]
    assert [e.state for e in history] == ["assigned", "running", "completed"]


async def test_illegal_transition_is_refused_and_changes_nothing(store: StateStore) -> None:
    await store.create_agent(make_record())
    with pytest.raises(IllegalTransitionError) as err:
        await store.transition("a1", task_id="t1", agent=AgentState.COMPLETED)
    assert err.value.current == "spawning"
    record = await store.require_agent("a1")
    assert record.state == AgentState.SPAWNING
    assert await store.events("a1") == []


async def test_combined_transition_is_all_or_nothing(store: StateStore) -> None:
    await store.create_agent(make_record())
    # agent spawning->running is legal, task pending->executing is not: neither happens
    with pytest.raises(IllegalTransitionError):
        await store.transition(
            "a1", task_id="t1", agent=AgentState.RUNNING, task=TaskState.EXECUTING
        )
    record = await store.require_agent("a1")
    assert (record.state, record.task_state) == (AgentState.SPAWNING, TaskState.PENDING)


async def test_unknown_agent(store: StateStore) -> None:
    with pytest.raises(NotFoundError):
        await store.transition("nope", task_id="t", agent=AgentState.RUNNING)


@pytest.mark.parametrize("rounds", [25])
async def test_kill_racing_completion_has_exactly_one_winner(
    store: StateStore, rounds: int
) -> None:
    for n in range(rounds):
        agent_id, task_id = f"race{n}", f"task{n}"
        await store.create_agent(make_record(agent_id, task_id))
        await store.transition(agent_id, task_id=task_id, task=TaskState.ASSIGNED)
        await store.transition(
            agent_id, task_id=task_id, agent=AgentState.RUNNING, task=TaskState.EXECUTING
        )
        results = await asyncio.gather(
            store.transition(
                agent_id, task_id=task_id, agent=AgentState.COMPLETED, task=TaskState.COMPLETED
            ),
            store.transition(
                agent_id, task_id=task_id, agent=AgentState.KILLED, task=TaskState.FAILED
            ),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, IllegalTransitionError)]
        assert len(winners) == 1
        assert len(losers) == 1
        record = await store.require_agent(agent_id)
        assert record.state.value == winners[0].state
        assert [e.state for e in await store.events(agent_id)][-1] == winners[0].state
        assert losers[0].current == winners[0].state  # the loser sees who won


async def test_many_concurrent_claims_one_winner(store: StateStore) -> None:
    await store.create_agent(make_record())
    results = await asyncio.gather(
        *(
            store.transition(
                "a1", task_id="t1", task=TaskState.ASSIGNED, fields={"spawner": f"s{i}"}
            )
            for i in range(20)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1


async def test_history_events_carry_the_previous_state(store: StateStore) -> None:
    await store.create_agent(make_record())
    await store.transition("a1", task_id="t1", task=TaskState.ASSIGNED)
    await store.transition("a1", task_id="t1", agent=AgentState.KILLED, task=TaskState.FAILED)
    history = await store.events("a1")
    assert [(e.kind, e.previous, e.state) for e in history] == [
        ("task_state", "pending", "assigned"),
        ("state", "spawning", "killed"),
    ]
    assert history[1].detail["taskState"] == "failed"


async def test_counts_follow_every_transition(store: StateStore) -> None:
    await store.create_agent(make_record("a1", "t1"))
    await store.create_agent(make_record("a2", "t2"))
    await store.create_agent(make_record("a3", "t3"))
    await store.transition("a1", task_id="t1", task=TaskState.ASSIGNED)
    await store.transition("a1", task_id="t1", agent=AgentState.RUNNING, task=TaskState.EXECUTING)
    await store.transition("a2", task_id="t2", agent=AgentState.KILLED, task=TaskState.FAILED)
    with pytest.raises(IllegalTransitionError):  # refused: counts untouched
        await store.transition("a2", task_id="t2", agent=AgentState.RUNNING)
    await store.delete_agent("a3", "t3")
    counts = await store.counts()
    assert counts["state"] == {"running": 1, "killed": 1}
    assert counts["task_state"] == {"executing": 1, "failed": 1}


async def test_kill_all_hold_is_recorded_once_and_released(store: StateStore) -> None:
    assert await store.held() is None
    await store.hold_all("incident", "admin")
    await store.hold_all("second", "other")  # the first order's reason stays
    held = await store.held()
    assert held is not None
    assert held["reason"] == "incident"
    assert await store.release_all() is True
    assert await store.held() is None
    assert await store.release_all() is False


async def test_create_writes_the_first_event_and_the_trace_in_the_same_step(
    store: StateStore,
) -> None:
    first = AgentEvent(agent_id="a1", task_id="t1", kind="state", state="spawning")
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    created = await store.create_agent(
        make_record(), first_event=first, traceparent=parent, trace_ttl_s=60
    )
    assert created == ("a1", True)
    [event] = await store.events("a1")
    assert (event.seq, event.state) == (1, "spawning")
    assert await store.agent_trace("a1") == parent
    assert 0 < await store.redis.ttl(store.key("agent", "a1", "trace")) <= 60
    # the next event follows it
    later = await store.append_event(AgentEvent(agent_id="a1", task_id="t1", kind="progress"))
    assert later.seq == 2
    # a second create of the task writes nothing of its own
    again = AgentEvent(agent_id="a2", task_id="t1", kind="state", state="spawning")
    assert await store.create_agent(
        make_record("a2", "t1"), first_event=again, traceparent=parent, trace_ttl_s=60
    ) == ("a1", False)
    assert await store.events("a2") == []
    assert await store.agent_trace("a2") is None


async def test_intake_reads_the_tasks_owner_and_the_hold_at_once(store: StateStore) -> None:
    assert await store.intake("t1") == (None, None)
    await store.create_agent(make_record())
    await store.redis.set(store.key("killall"), '{"reason": "test"}')
    owner, hold = await store.intake("t1")
    assert owner == "a1"
    assert hold == {"kind": "killall", "reason": "test"}
    assert hold == await store.held()


async def test_standings_read_what_a_kill_all_needs_as_the_records_say(store: StateStore) -> None:
    await store.create_agent(make_record("queued", "t1"))
    await store.create_agent(make_record("done", "t2"))
    await store.transition("done", task_id="t2", task=TaskState.ASSIGNED)
    await store.transition("done", task_id="t2", agent=AgentState.RUNNING, task=TaskState.EXECUTING)
    ended = utcnow()
    await store.transition(
        "done",
        task_id="t2",
        agent=AgentState.KILLED,
        task=TaskState.FAILED,
        fields={"completed_at": ended},
    )
    standings = await store.standings(["queued", "missing", "done"])
    assert list(standings) == ["queued", "done"]
    for agent_id, standing in standings.items():
        record = await store.require_agent(agent_id)
        assert standing == (record.state, record.task_state, record.completed_at)
    assert standings["done"].completed_at == ended
    assert standings["queued"].task_state == TaskState.PENDING
