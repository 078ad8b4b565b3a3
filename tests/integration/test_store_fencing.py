"""Fencing tokens in the Valkey store: a write of an older attempt is refused atomically."""

from __future__ import annotations

import pytest

from shared.errors import IllegalTransitionError, NotFoundError, StaleAttemptError
from shared.messages.agents import AgentEvent, AgentPatch, AgentState, TaskState
from shared.store import StateStore, Transition
from tests.integration.test_store import make_record

pytestmark = pytest.mark.integration


async def _claim(store: StateStore, attempt: int) -> None:
    """What a spawner's claim writes: assigned, attempts moved on, fenced by the old one."""
    await store.transition(
        "a1",
        task_id="t1",
        task=TaskState.ASSIGNED,
        fields={"attempts": attempt},
        fence=attempt - 1,
    )


async def test_a_stale_attempt_can_neither_transition_update_nor_record(
    store: StateStore,
) -> None:
    await store.create_agent(make_record())
    await _claim(store, 1)
    await store.transition(
        "a1", task_id="t1", agent=AgentState.RUNNING, task=TaskState.EXECUTING, fence=1
    )
    # attempt 1's spawner is cut off; its task is redelivered and claimed as attempt 2
    await store.transition(
        "a1", task_id="t1", agent=AgentState.SPAWNING, task=TaskState.PENDING, fence=1
    )
    await _claim(store, 2)
    before = await store.require_agent("a1")
    events_before = len(await store.events("a1"))

    with pytest.raises(StaleAttemptError, match="attempt 1 is stale"):
        await store.transition(
            "a1", task_id="t1", agent=AgentState.COMPLETED, task=TaskState.COMPLETED, fence=1
        )
    with pytest.raises(StaleAttemptError):
        await store.update("a1", AgentPatch(pushed_branch="mosaic/stale"), fence=1)
    with pytest.raises(StaleAttemptError):
        await store.append_event(
            AgentEvent(agent_id="a1", task_id="t1", kind="progress", detail={}), fence=1
        )
    after = await store.require_agent("a1")
    assert after == before  # nothing of the stale attempt landed
    assert len(await store.events("a1")) == events_before

    # the current attempt writes normally
    await store.update("a1", AgentPatch(turns=3), fence=2)
    await store.transition(
        "a1", task_id="t1", agent=AgentState.RUNNING, task=TaskState.EXECUTING, fence=2
    )
    assert (await store.require_agent("a1")).turns == 3


async def test_a_claim_on_an_outdated_read_is_refused(store: StateStore) -> None:
    """B read the record (attempts 0) before A claimed, ran and handed the task back:
    the state is ``pending`` again, so only the fence tells B its read is outdated."""
    await store.create_agent(make_record())
    await _claim(store, 1)  # A
    await store.transition("a1", task_id="t1", task=TaskState.PENDING, fence=1)
    with pytest.raises(StaleAttemptError):
        await _claim(store, 1)  # B, on its read of attempts 0
    assert (await store.require_agent("a1")).attempts == 1
    await _claim(store, 2)  # B again, on a fresh read


async def test_attempt_reasons_accumulate_in_order(store: StateStore) -> None:
    await store.create_agent(make_record())
    for attempt in (1, 2):
        await _claim(store, attempt)
        await store.transition(
            "a1",
            task_id="t1",
            task=TaskState.PENDING,
            fence=attempt,
            append={"attempt_reasons": f"attempt {attempt}: gates/unavailable"},
        )
    record = await store.require_agent("a1")
    assert record.attempt_reasons == [
        "attempt 1: gates/unavailable",
        "attempt 2: gates/unavailable",
    ]
    with pytest.raises(ValueError, match="attempts"):  # not a field a patch can carry
        await store.update("a1", AgentPatch(attempts=9))  # type: ignore[call-arg]


async def test_a_transition_sent_again_is_answered_not_refused(store: StateStore) -> None:
    """redis-py resends a command whose connection dropped before its answer (a Valkey
    restart): the second delivery of one transition answers the event the first recorded,
    instead of ``executing -> executing``, and records nothing twice (the chaos suite's
    Valkey restarts failed a task this way)."""
    await store.create_agent(make_record())
    await _claim(store, 1)

    async def running(op: str) -> AgentEvent:
        return await store.transition(
            "a1", task_id="t1", agent=AgentState.RUNNING, task=TaskState.EXECUTING, fence=1, op=op
        )

    first = await running("op-1")
    events = len(await store.events("a1"))
    assert await running("op-1") == first
    assert len(await store.events("a1")) == events
    assert (await store.counts())["state"]["running"] == 1
    # a new write (another op) is still checked: running -> running is refused
    with pytest.raises(IllegalTransitionError):
        await running("op-2")
    # and deleting the agent takes the write's memory with it
    await store.delete_agent("a1", "t1")
    assert not await store.redis.exists(store.key("agent", "a1", "lastop"))


async def test_a_stale_attempt_cannot_add_to_the_conversation(store: StateStore) -> None:
    from shared.messages.conversation import ConversationEntry

    await store.create_agent(make_record())
    await _claim(store, 1)
    entry = ConversationEntry(kind="model", text="from attempt 1", turn=1, attempt=1)
    await store.append_conversation("a1", [entry], fence=1)
    await store.transition("a1", task_id="t1", task=TaskState.PENDING, fence=1)
    await _claim(store, 2)
    with pytest.raises(StaleAttemptError):
        await store.append_conversation("a1", [entry], fence=1)
    await store.append_conversation("a1", [entry.model_copy(update={"attempt": 2})], fence=2)
    page = await store.conversation("a1", 0, 10)
    assert [e.attempt for e in page.entries] == [1, 2]


async def test_moves_written_together_each_answer_for_themselves(store: StateStore) -> None:
    """``transition_many`` (a kill-all's records): one round trip, and each move is
    made or refused exactly as ``transition`` alone would have: legal, already final,
    stale, missing."""
    for agent_id in ("live", "ended", "stale"):
        await store.create_agent(make_record(agent_id, f"t-{agent_id}"))
    for agent_id in ("live", "ended", "stale"):
        await store.transition(agent_id, task_id=f"t-{agent_id}", task=TaskState.ASSIGNED,
                               fields={"attempts": 1}, fence=0)  # fmt: skip
        await store.transition(agent_id, task_id=f"t-{agent_id}", agent=AgentState.RUNNING,
                               task=TaskState.EXECUTING, fence=1)  # fmt: skip
    await store.transition("ended", task_id="t-ended", agent=AgentState.COMPLETED,
                           task=TaskState.COMPLETED, fence=1)  # fmt: skip
    await store.transition("stale", task_id="t-stale", agent=AgentState.SPAWNING,
                           task=TaskState.PENDING, fence=1)  # fmt: skip
    await store.transition("stale", task_id="t-stale", task=TaskState.ASSIGNED,
                           fields={"attempts": 2}, fence=1)  # fmt: skip
    ended_before = await store.require_agent("ended")
    stale_events = len(await store.events("stale"))

    def killed(agent_id: str) -> Transition:
        return Transition(agent_id, f"t-{agent_id}", AgentState.KILLED, TaskState.FAILED,
                          {"error": "killed: test"}, {"reason": "test"}, fence=1)  # fmt: skip

    live, ended, stale, missing = await store.transition_many(
        [killed("live"), killed("ended"), killed("stale"), killed("nobody")]
    )
    assert isinstance(live, AgentEvent)
    assert (live.previous, live.state) == ("running", "killed")
    assert (await store.require_agent("live")).error == "killed: test"
    assert (await store.events("live"))[-1].seq == live.seq
    assert isinstance(ended, IllegalTransitionError)
    assert await store.require_agent("ended") == ended_before
    assert isinstance(stale, StaleAttemptError)
    assert len(await store.events("stale")) == stale_events
    assert isinstance(missing, NotFoundError)
    assert await store.transition_many([]) == []
