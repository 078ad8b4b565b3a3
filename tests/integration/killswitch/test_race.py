"""A kill racing a completion has exactly one winner: in the record, the history and
the events published on NATS."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from mosaic.supervisor import Supervisor
from shared import subjects
from shared.errors import IllegalTransitionError
from shared.messages.agents import AgentEvent, AgentRecord, AgentState, TaskState
from shared.messages.kill import KillOrdered
from shared.store import StateStore
from tests.integration.killswitch.helpers import (
    admin,
    events,
    final_states,
    spawn,
    status,
    system,
    wait_state,
)
from tests.systems import FINAL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    with system(tmp_path_factory.mktemp("race") / "home", SPAWNER_CONCURRENCY="20") as s:
        yield s


def quick(n: int) -> list[dict[str, object]]:
    return [
        {"tool": "write_file", "input": {"path": f"f{n}.txt", "content": "x\n"}},
        {"tool": "finish", "input": {"summary": "done"}},
    ]


async def test_kills_racing_completions_have_one_winner_everywhere(
    sup: Supervisor, remote_repo: Path, unique: str
) -> None:
    seen: dict[str, list[str]] = defaultdict(list)

    async def on_event(msg: Msg) -> None:
        event = AgentEvent.from_bytes(msg.data)
        if event.kind == "state" and event.state in FINAL:
            seen[event.agent_id].append(event.state)

    nc = await nats.connect(sup.nats_url)
    await nc.subscribe(f"{subjects.EVENTS_PREFIX}.agent.*", cb=on_event)
    try:
        with admin(sup) as http:
            ids = [spawn(http, remote_repo, f"race-{unique}-{n}", quick(n)) for n in range(20)]
            # kill each as soon as it runs, spread over its short life
            pending = list(ids)
            deadline = time.monotonic() + 90
            delay = 0.0
            while pending and time.monotonic() < deadline:
                for agent_id in list(pending):
                    if status(http, agent_id)["state"] != "spawning":
                        await asyncio.sleep(delay)
                        order = KillOrdered(reason="race", requested_by="test")
                        await nc.publish(subjects.kill_agent(agent_id), order.to_bytes())
                        await nc.flush()
                        pending.remove(agent_id)
                        delay = (delay + 0.07) % 0.5
                await asyncio.sleep(0.01)
            records = wait_state(http, ids, FINAL, timeout=90)
            await asyncio.sleep(1.0)
            tally: dict[str, int] = defaultdict(int)
            for record in records.values():
                tally[record["state"]] += 1
            print(f"\nrace outcomes: {dict(tally)}")
            for agent_id, record in records.items():
                history = final_states(events(http, agent_id))
                assert history == [record["state"]], (agent_id, history)
                assert seen[agent_id] == [record["state"]], (agent_id, seen[agent_id])
                if record["state"] == "killed":
                    assert record["taskState"] == "failed"
                else:
                    assert record["taskState"] == record["state"]
    finally:
        await nc.close()


async def test_store_race_kill_against_completion(store: StateStore, unique: str) -> None:
    async def running_agent(n: int) -> str:
        agent_id = f"r{unique}{n}"
        record = AgentRecord(
            agent_id=agent_id,
            task_id=f"t{unique}{n}",
            agent_type="worker",
            state=AgentState.SPAWNING,
            task_state=TaskState.PENDING,
            repository="/r",
            branch="main",
            priority=5,
            gate_profile="minimal",
            created_at=datetime.now(UTC),
        )
        await store.create_agent(record)
        tid = record.task_id
        await store.transition(agent_id, task_id=tid, task=TaskState.ASSIGNED)
        await store.transition(
            agent_id, task_id=tid, agent=AgentState.RUNNING, task=TaskState.EXECUTING
        )
        return agent_id

    ids = [await running_agent(n) for n in range(50)]

    async def end(agent_id: str, state: AgentState, task: TaskState) -> str | None:
        try:
            await store.transition(agent_id, task_id=f"t{agent_id[1:]}", agent=state, task=task)
        except IllegalTransitionError as exc:
            losers.append(str(exc.current))
            return None
        return state.value

    losers: list[str] = []
    for agent_id in ids:
        results = await asyncio.gather(
            end(agent_id, AgentState.KILLED, TaskState.FAILED),
            end(agent_id, AgentState.COMPLETED, TaskState.COMPLETED),
        )
        winners = [r for r in results if r]
        assert len(winners) == 1
        record = await store.require_agent(agent_id)
        assert record.state.value == winners[0]
        history = [e.state for e in await store.events(agent_id) if e.state in FINAL]
        assert history == winners
    assert len(losers) == len(ids)
    assert set(losers) <= {"killed", "completed", "failed"}  # the loser sees who won
