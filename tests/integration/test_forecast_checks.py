"""The spawner's side of the conflict forecast with real gitops, NATS, Valkey and git:
which agents a push concerns, once per push, and what lands on the record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from services.gitops.app import create_app
from services.gitops.settings import GitOpsSettings
from services.spawner.clients import GitOps
from services.spawner.forecast import Forecast
from shared import subjects
from shared.bus import make_broker, request
from shared.messages.agents import AgentRecord, AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.gitops import CommitMade, PushDone, RepoPushed, WorktreeReady
from shared.settings import GitSettings, HomeSettings, NatsSettings, host_id
from shared.store import StateStore
from shared.subjects import GitOp
from shared.tracker import AgentTracker
from tests.conftest import git
from tests.integration.gitops.conftest import commit_req, push_req, wt_req


def on_host(operation: GitOp) -> str:
    """The subject of ``operation`` on this machine's host (the services' default)."""
    return subjects.gitops(host_id(), operation)


pytestmark = pytest.mark.integration

CALC = "".join(f"line {n}\n" for n in range(1, 21))


@pytest.fixture
async def bus(nats_url: str, tmp_path: Path) -> AsyncIterator[NatsBroker]:
    app = create_app(
        NatsSettings(nats_url=nats_url),
        HomeSettings(mosaic_home=tmp_path / "home"),
        GitSettings(git_author_name="Forecast", git_author_email="forecast@test.invalid"),
        GitOpsSettings(network_timeout=20, local_timeout=20),
    )
    assert app.broker is not None
    async with app.broker:
        await app.broker.start()
        caller = make_broker(NatsSettings(nats_url=nats_url), "forecast-test-spawner")
        async with caller:
            await caller.start()
            yield caller


@pytest.fixture
def calc_remote(remote_repo: Path, tmp_path: Path) -> Path:
    clone = tmp_path / "calc-seed"
    git(tmp_path, "clone", "-q", str(remote_repo), str(clone))
    (clone / "calc.txt").write_text(CALC)
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-qm", "calc")
    git(clone, "push", "-q", "origin", "main")
    return remote_repo


async def worktree(bus: NatsBroker, repo: Path, agent: str, line: int, text: str) -> Path:
    """The agent's repository, made by gitops, with ``line`` of calc.txt changed."""
    ready = await request(bus, on_host(GitOp.WORKTREE_CREATE), wt_req(repo, agent),
                          WorktreeReady, 20)  # fmt: skip
    assert ready.error is None
    path = Path(ready.path or "")
    edit_line(path, line, text)
    return path


def edit_line(path: Path, line: int, text: str) -> None:
    lines = CALC.splitlines(keepends=True)
    lines[line - 1] = f"{text}\n"
    path.joinpath("calc.txt").write_text("".join(lines))


async def pushed_by(bus: NatsBroker, repo: Path, pusher: str) -> RepoPushed:
    """``pusher``'s agent commits and pushes; its announcement on ``mosaic.repo.pushed``."""
    heard: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_pushed(msg: Msg) -> None:
        await heard.put(msg.data)

    sub = await bus.connection.subscribe(subjects.REPO_PUSHED, cb=on_pushed)
    made = await request(bus, on_host(GitOp.COMMIT), commit_req(repo, pusher), CommitMade, 20)
    assert made.error is None
    done = await request(bus, on_host(GitOp.PUSH), push_req(repo, pusher), PushDone, 20)
    assert done.error is None
    data = await asyncio.wait_for(heard.get(), 20)
    await sub.unsubscribe()
    return RepoPushed.from_bytes(data)


async def record(store: StateStore, agent: str, repo: Path) -> None:
    await store.create_agent(
        AgentRecord(
            agent_id=agent,
            task_id=f"task-{agent}",
            agent_type="worker",
            state=AgentState.RUNNING,
            task_state=TaskState.EXECUTING,
            repository=str(repo),
            branch="main",
            priority=5,
            gate_profile="minimal",
            created_at=utcnow(),
        )
    )


async def test_a_push_concerns_overlapping_agents_here_once(
    bus: NatsBroker, store: StateStore, calc_remote: Path, unique: str
) -> None:
    heard: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_pushed(msg: object) -> None:
        await heard.put(msg.data)  # type: ignore[attr-defined]

    sub = await bus.connection.subscribe(subjects.REPO_PUSHED, cb=on_pushed)
    pusher, near, far, other_base = (f"{n}{unique}" for n in ("p", "n", "f", "o"))
    await worktree(bus, calc_remote, pusher, 8, "eight by the pusher")
    await worktree(bus, calc_remote, near, 9, "nine, next to it")  # adjacent: overlaps
    await worktree(bus, calc_remote, far, 15, "fifteen")  # apart: does not
    await worktree(bus, calc_remote, other_base, 8, "eight too")  # same line, another base
    for agent in (near, far, other_base):
        await record(store, agent, calc_remote)
    made = await request(bus, on_host(GitOp.COMMIT), commit_req(calc_remote, pusher),
                         CommitMade, 20)  # fmt: skip
    assert made.error is None
    done = await request(
        bus,
        on_host(GitOp.PUSH),
        push_req(calc_remote, pusher),
        PushDone,
        20,
    )
    assert done.error is None
    data = await asyncio.wait_for(heard.get(), 20)
    await sub.unsubscribe()

    forecast = Forecast(AgentTracker(store, bus), GitOps(bus, 20, host_id()))
    repo = str(calc_remote)
    with (
        forecast.watching(near, "t1", repo, "main") as near_notes,
        forecast.watching(far, "t1", repo, "main") as far_notes,
        forecast.watching(other_base, "t1", repo, "develop") as other_notes,
        forecast.watching(pusher, "t1", repo, "main") as pusher_notes,
    ):
        await forecast.on_push(RepoPushed.from_bytes(data))
        await forecast.on_push(RepoPushed.from_bytes(data))  # the same push again: no repeat
        await forecast.on_message(b"{not json")  # a malformed announcement is dropped
    pushed = RepoPushed.from_bytes(data)
    assert near_notes.pending == (
        f"Note: agent {pusher} changed calc.txt line 8 on mosaic/agent-{pusher} (pushed, "
        f"commit {pushed.commit[:12]}; line numbers of the base main), where you are "
        "changing the same code. Rebase onto it or avoid those lines.",
    )
    assert far_notes.pending == ()
    assert other_notes.pending == ()
    assert pusher_notes.pending == ()

    near_record = await store.require_agent(near)
    assert [(o.agent_id, o.branch, o.commit, o.files) for o in near_record.overlaps] == [
        (pusher, f"mosaic/agent-{pusher}", pushed.commit, ("calc.txt line 8",))
    ]
    near_events = [e for e in await store.events(near) if e.kind == "overlap"]
    assert len(near_events) == 1
    assert near_events[0].detail["agentId"] == pusher
    assert near_events[0].detail["files"] == ["calc.txt line 8"]
    for quiet in (far, other_base):
        assert (await store.require_agent(quiet)).overlaps == ()
        assert not [e for e in await store.events(quiet) if e.kind == "overlap"]


async def test_an_agent_that_did_nothing_since_is_not_asked_about_again(
    bus: NatsBroker, store: StateStore, calc_remote: Path, unique: str
) -> None:
    """Every push checks every running agent of its base; an agent that ran no tool
    since its last check has the changes it had, and gitops is not asked again. Once it
    acts (here: edits, inside ``acting`` as its loop marks a tool call), it is."""
    pusher, other = f"p{unique}", f"o{unique}"
    await worktree(bus, calc_remote, pusher, 8, "eight by the pusher")
    path = await worktree(bus, calc_remote, other, 15, "fifteen")  # apart: no overlap
    await record(store, other, calc_remote)
    pushed = await pushed_by(bus, calc_remote, pusher)
    asked: list[bytes] = []

    async def count(msg: Msg) -> None:
        asked.append(msg.data)

    sub = await bus.connection.subscribe(on_host(GitOp.CHANGES), cb=count)
    forecast = Forecast(AgentTracker(store, bus), GitOps(bus, 20, host_id()))
    try:
        with forecast.watching(other, "t1", str(calc_remote), "main") as notes:
            await forecast.on_push(pushed)
            await forecast.on_push(pushed.model_copy(update={"commit": "a" * 40}))
            await settle(bus)
            assert len(asked) == 1  # the second push: the answer of the first still holds
            assert notes.pending == ()

            with notes.acting():  # a tool call of the agent: now it edits line 8 too
                edit_line(path, 8, "eight by the other agent")
            await forecast.on_push(pushed.model_copy(update={"commit": "b" * 40}))
            await settle(bus)
            assert len(asked) == 2
            assert len(notes.pending) == 1
            assert "calc.txt line 8" in notes.pending[0]

            with notes.acting():  # asked while a call is under way: not kept
                await forecast.on_push(pushed.model_copy(update={"commit": "c" * 40}))
            await forecast.on_push(pushed.model_copy(update={"commit": "d" * 40}))
            await settle(bus)
            assert len(asked) == 4
    finally:
        await sub.unsubscribe()


async def settle(bus: NatsBroker) -> None:
    """Every request sent so far has reached the counting subscription's callback."""
    await bus.connection.flush()
    await asyncio.sleep(0.1)
