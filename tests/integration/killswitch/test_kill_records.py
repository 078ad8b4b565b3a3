"""A kill-all's ``killed`` records written together (``services.spawner.killrecords``),
against real Valkey, real NATS and real sandbox processes: each agent gets its record
once, after its sandbox is stopped, and an agent that had ended otherwise keeps its end."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from redis.asyncio import Redis

from services.spawner.killrecords import write_together
from services.spawner.kills import KillRegistry
from shared import subjects
from shared.bus import make_broker
from shared.messages.agents import AgentEvent, AgentState, TaskState
from shared.messages.kill import KillOrdered
from shared.sandbox.base import Sandbox, SandboxSpec
from shared.sandbox.host import HostSandboxFactory
from shared.settings import NatsSettings
from shared.store import StateStore
from shared.tracker import AgentTracker, AttemptTracker
from tests.integration.test_store import make_record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ORDER = KillOrdered(reason="kill-all test", requested_by="test")


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[NatsBroker]:
    bus = make_broker(NatsSettings(nats_url=nats_url), "kill-records-test")
    await bus.start()
    yield bus
    await bus.stop()


async def _running_agent(store: StateStore, agent_id: str) -> None:
    """An agent as a spawner runs it: claimed as attempt 1, running."""
    await store.create_agent(make_record(agent_id, f"t-{agent_id}"))
    await store.transition(agent_id, task_id=f"t-{agent_id}", task=TaskState.ASSIGNED,
                           fields={"attempts": 1}, fence=0)  # fmt: skip
    await store.transition(agent_id, task_id=f"t-{agent_id}", agent=AgentState.RUNNING,
                           task=TaskState.EXECUTING, fence=1)  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie has ended: its state is Z
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


async def test_a_kill_alls_records_are_written_once_each_and_the_sandboxes_stopped(
    store: StateStore, broker: NatsBroker, tmp_path: Path
) -> None:
    tracker = AgentTracker(store, broker)
    registry = KillRegistry()
    heard: list[AgentEvent] = []

    async def listen(msg: Msg) -> None:
        heard.append(AgentEvent.from_bytes(msg.data))

    sub = await broker.connection.subscribe(f"{subjects.EVENTS_PREFIX}.agent.*", cb=listen)
    factory = HostSandboxFactory(tmp_path)
    boxes: dict[str, Sandbox] = {}
    commands: list[asyncio.Task[object]] = []
    runs: list[asyncio.Task[None]] = []
    try:
        for agent_id in ("k1", "k2", "k3", "ended", "preparing", "cut-off"):
            await _running_agent(store, agent_id)
            run = asyncio.create_task(asyncio.sleep(3600))
            runs.append(run)
            running = registry.add(agent_id, f"t-{agent_id}", run)
            with trace.use_span(_in_trace(agent_id)):  # as a run makes it: in its attempt
                running.tracker = AttemptTracker(tracker, agent_id, f"t-{agent_id}", 1)
            if agent_id == "preparing":  # no sandbox yet: its run writes its own record
                continue
            worktree = tmp_path / agent_id
            worktree.mkdir()
            box = await factory.create(SandboxSpec(agent_id, f"t-{agent_id}", worktree))
            boxes[agent_id] = running.sandbox = box
            commands.append(asyncio.create_task(box.exec("sleep 300", timeout=600)))
            # lost NATS past its lease: the task may run elsewhere, its run writes nothing
            running.lease_lost = agent_id == "cut-off"
        await store.transition("ended", task_id="t-ended", agent=AgentState.COMPLETED,
                               task=TaskState.COMPLETED, fence=1)  # fmt: skip
        await _until(lambda: len(_children()) == len(boxes))  # every command started
        pids = [p.pid for p in _children()]

        killed = registry.kill_all(ORDER)
        writer = write_together(tracker, [registry.agents[a] for a in killed])
        assert writer is not None
        answers = {}
        for agent_id in ("k1", "k2", "k3", "ended"):
            future = registry.agents[agent_id].recorded
            assert future is not None
            answers[agent_id] = await asyncio.wait_for(asyncio.shield(future), 10)
        await writer
        assert answers == {"k1": True, "k2": True, "k3": True, "ended": False}
        assert registry.agents["preparing"].recorded is None
        assert registry.agents["cut-off"].recorded is None
        assert (await store.require_agent("cut-off")).state == AgentState.RUNNING

        for agent_id in ("k1", "k2", "k3"):
            record = await store.require_agent(agent_id)
            assert (record.state, record.task_state) == (AgentState.KILLED, TaskState.FAILED)
            assert record.error == "killed: kill-all test"
        assert (await store.require_agent("ended")).state == AgentState.COMPLETED
        assert (await store.require_agent("preparing")).state == AgentState.RUNNING
        await broker.connection.flush()
        await _until(lambda: len([e for e in heard if e.kind == "state"]) >= 3)
        await asyncio.sleep(0.2)  # and no more than those
        states = [(e.agent_id, e.state) for e in heard if e.kind == "state"]
        assert sorted(states) == [("k1", "killed"), ("k2", "killed"), ("k3", "killed")]
        # each event in its own agent's trace, though one writer wrote them all
        for event in (e for e in heard if e.kind == "state"):
            assert event.trace_id == _trace_of(event.agent_id)
    finally:
        await sub.unsubscribe()
        for task in runs + commands:
            task.cancel()
        await asyncio.gather(*runs, *commands, return_exceptions=True)
        for made in boxes.values():
            await made.close()
    assert not [pid for pid in pids if _alive(pid)]


async def test_a_store_out_of_reach_leaves_each_record_to_its_run(
    broker: NatsBroker, tmp_path: Path, unused_tcp_port: int
) -> None:
    """Valkey away: the writer answers None for every agent, so each run writes its own
    record as it would without a kill-all (and reports the failure there)."""
    redis = Redis.from_url(f"redis://127.0.0.1:{unused_tcp_port}", socket_connect_timeout=1)
    tracker = AgentTracker(StateStore(redis, prefix="away"), broker)
    registry = KillRegistry()
    run = asyncio.create_task(asyncio.sleep(3600))
    running = registry.add("a1", "t1", run)
    running.tracker = AttemptTracker(tracker, "a1", "t1", 1)
    worktree = tmp_path / "a1"
    worktree.mkdir()
    box = await HostSandboxFactory(tmp_path).create(SandboxSpec("a1", "t1", worktree))
    running.sandbox = box
    try:
        registry.kill_all(ORDER)
        writer = write_together(tracker, [running])
        assert writer is not None
        assert running.recorded is not None
        assert await asyncio.wait_for(asyncio.shield(running.recorded), 10) is None
        await writer
    finally:
        await asyncio.gather(run, return_exceptions=True)
        await box.close()
        await redis.aclose()


def _children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "sleep" in p.name()]


def _trace_of(agent_id: str) -> str:
    return f"{abs(hash(agent_id)) % 2**120:032x}"


def _in_trace(agent_id: str) -> NonRecordingSpan:
    """A span of the agent's own trace, as the run's attempt span would be."""
    context = SpanContext(
        trace_id=int(_trace_of(agent_id), 16),
        span_id=1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return NonRecordingSpan(context)


async def _until(done: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)
