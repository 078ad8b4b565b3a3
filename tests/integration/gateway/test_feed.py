"""The live feed: every state change of an agent, in order, over SSE and WebSocket;
replay from the Valkey history; reordering; slow clients dropped; feed auth."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.nats import NatsBroker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from mosaic.client import AsyncMosaicClient, SseParser
from shared import subjects
from shared.messages.agents import AgentEvent, AgentState, TaskState
from tests.integration.gateway.conftest import OPERATOR, Gateway, spawn_body, start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LIFE = [
    ("state", "spawning"),
    ("task_state", "assigned"),
    ("state", "running"),
    ("progress", None),
    ("progress", None),
    ("gate", None),
    ("state", "completed"),
]


async def new_agent(gateway: Gateway, remote_repo: Path, task_id: str) -> str:
    async with gateway.client() as client:
        answer = await client.post("/agents/spawn", json=spawn_body(remote_repo, task_id))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"])


async def live_through(gateway: Gateway, agent_id: str, task_id: str) -> None:
    """What a spawner does to an agent that runs and completes, one step at a time."""
    tracker = gateway.tracker
    await tracker.transition(agent_id, task_id=task_id, task=TaskState.ASSIGNED)
    await tracker.transition(
        agent_id, task_id=task_id, agent=AgentState.RUNNING, task=TaskState.EXECUTING
    )
    await tracker.record(agent_id, task_id, "progress", {"step": "turn_started", "turn": 1})
    await tracker.record(agent_id, task_id, "progress", {"step": "tool_called", "tool": "ls"})
    await tracker.record(agent_id, task_id, "gate", {"approved": True, "results": []})
    await tracker.transition(
        agent_id, task_id=task_id, agent=AgentState.COMPLETED, task=TaskState.COMPLETED
    )


def shape(events: list[AgentEvent]) -> list[tuple[str, str | None]]:
    return [
        (e.kind, e.state if e.kind != "progress" and e.kind != "gate" else None) for e in events
    ]


async def sse_events(
    url: str,
    params: dict[str, Any],
    count: int,
    headers: dict[str, str] | None = None,
    ready: asyncio.Event | None = None,
) -> list[AgentEvent]:
    headers = headers if headers is not None else {"Authorization": f"Bearer {OPERATOR}"}
    got: list[AgentEvent] = []
    parser = SseParser()
    async with (
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=None)) as http,
        http.stream("GET", "/events/stream", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            message = parser.feed(line)
            if message is None:
                continue
            kind, data, event_id = message
            if kind == "ready":
                assert json.loads(data) == {"role": "operator"}
                if ready is not None:
                    ready.set()
            elif kind == "agent":
                event = AgentEvent.model_validate_json(data)
                assert event_id == f"{event.agent_id}:{event.seq}"
                got.append(event)
                if len(got) == count:
                    return got
    raise AssertionError(f"stream ended after {len(got)} events")


async def ws_events(ws: ClientConnection, count: int) -> list[AgentEvent]:
    got: list[AgentEvent] = []
    while len(got) < count:
        message = json.loads(await ws.recv())
        if message["type"] == "event":
            got.append(AgentEvent.model_validate(message["event"]))
    return got


@pytest.fixture
def ws_url(gateway: Gateway) -> str:
    return gateway.url.replace("http://", "ws://") + "/events/ws"


async def test_sse_delivers_every_state_change_in_order(
    gateway: Gateway, remote_repo: Path, unique: str
) -> None:
    agent_id = await new_agent(gateway, remote_repo, f"sse-{unique}")
    ready = asyncio.Event()
    reader = asyncio.create_task(
        sse_events(gateway.url, {"agentId": agent_id, "since": 0}, len(LIFE), ready=ready)
    )
    await asyncio.wait_for(ready.wait(), 5)
    await live_through(gateway, agent_id, f"sse-{unique}")
    events = await asyncio.wait_for(reader, 10)
    assert shape(events) == LIFE
    assert [e.seq for e in events] == list(range(1, len(LIFE) + 1))
    assert [e.previous for e in events if e.kind == "state"] == [None, "spawning", "running"]


async def test_websocket_delivers_every_state_change_in_order(
    gateway: Gateway, ws_url: str, remote_repo: Path, unique: str
) -> None:
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {OPERATOR}"}) as ws:
        assert json.loads(await ws.recv()) == {"type": "ready", "role": "operator"}
        agent_id = await new_agent(gateway, remote_repo, f"ws-{unique}")
        await live_through(gateway, agent_id, f"ws-{unique}")
        events = await asyncio.wait_for(ws_events(ws, len(LIFE)), 10)
    assert shape(events) == LIFE
    assert [e.seq for e in events] == list(range(1, len(LIFE) + 1))


async def test_websocket_token_as_subprotocol_and_replay(
    gateway: Gateway, ws_url: str, remote_repo: Path, unique: str
) -> None:
    agent_id = await new_agent(gateway, remote_repo, f"wsr-{unique}")
    task_id = f"wsr-{unique}"
    await gateway.tracker.transition(agent_id, task_id=task_id, task=TaskState.ASSIGNED)
    encoded = base64.urlsafe_b64encode(OPERATOR.encode()).decode().rstrip("=")
    offered = [Subprotocol("mosaic.bearer"), Subprotocol(f"mosaic.bearer.{encoded}")]
    async with connect(f"{ws_url}?agentId={agent_id}&since=1", subprotocols=offered) as ws:
        assert ws.subprotocol == "mosaic.bearer"
        assert json.loads(await ws.recv())["type"] == "ready"
        replayed = await asyncio.wait_for(ws_events(ws, 1), 5)
        assert [(e.seq, e.state) for e in replayed] == [(2, "assigned")]
        await gateway.tracker.transition(agent_id, task_id=task_id, agent=AgentState.RUNNING)
        live = await asyncio.wait_for(ws_events(ws, 1), 5)
        assert [(e.seq, e.state) for e in live] == [(3, "running")]


async def test_all_agents_feed_and_client_replay_resume(
    gateway: Gateway, remote_repo: Path, unique: str
) -> None:
    async with AsyncMosaicClient(gateway.url, OPERATOR) as client:
        stream = client.events()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.3)
        a = await new_agent(gateway, remote_repo, f"a-{unique}")
        b = await new_agent(gateway, remote_repo, f"b-{unique}")
        seen = [await asyncio.wait_for(first, 5), await asyncio.wait_for(anext(stream), 5)]
        assert {e.agent_id for e in seen} == {a, b}
        await stream.aclose()
        # replay: everything of agent a after seq 0, then live
        await live_through(gateway, a, f"a-{unique}")
        replay = client.events(agent_id=a, since=0)
        events = [await asyncio.wait_for(anext(replay), 5) for _ in range(len(LIFE))]
        await replay.aclose()
    assert shape(events) == LIFE


async def test_sse_resumes_from_last_event_id(
    gateway: Gateway, remote_repo: Path, unique: str
) -> None:
    agent_id = await new_agent(gateway, remote_repo, f"lei-{unique}")
    await live_through(gateway, agent_id, f"lei-{unique}")
    headers = {"Authorization": f"Bearer {OPERATOR}", "Last-Event-ID": f"{agent_id}:5"}
    events = await asyncio.wait_for(
        sse_events(gateway.url, {"agentId": agent_id}, 2, headers=headers), 5
    )
    assert [e.seq for e in events] == [6, 7]


async def test_events_arriving_out_of_order_are_delivered_in_order(
    gateway: Gateway, publisher: NatsBroker, remote_repo: Path, unique: str
) -> None:
    agent_id = await new_agent(gateway, remote_repo, f"ooo-{unique}")
    ready = asyncio.Event()
    reader = asyncio.create_task(sse_events(gateway.url, {"agentId": agent_id}, 4, ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    store = gateway.store

    def progress(n: int) -> AgentEvent:
        return AgentEvent(
            agent_id=agent_id, task_id=f"ooo-{unique}", kind="progress", detail={"n": n}
        )

    stored = [await store.append_event(progress(n)) for n in range(4)]
    subject = subjects.agent_events(agent_id)
    # seq 3 first, seq 2 never published at all, then 5, then 4
    for index in (1, 3, 2):
        await publisher.publish(stored[index].to_bytes(), subject)
    events = await asyncio.wait_for(reader, 10)
    assert [e.seq for e in events] == [2, 3, 4, 5]
    assert [e.detail["n"] for e in events] == [0, 1, 2, 3]


async def test_a_slow_client_is_dropped_and_never_blocks_others(
    nats_url: str, valkey_url: str, unique: str, remote_repo: Path
) -> None:
    gw, server, task = await start_gateway(nats_url, valkey_url, f"slow{unique}", feed_queue_size=5)
    try:
        agent_id = await new_agent(gw, remote_repo, f"slow-{unique}")
        hub = gw.app.state.resources.feed
        slow = hub.connect(None, "sse")  # registered, never read
        ready = asyncio.Event()
        reader = asyncio.create_task(sse_events(gw.url, {"agentId": agent_id}, 30, ready=ready))
        await asyncio.wait_for(ready.wait(), 5)
        for n in range(30):
            await gw.tracker.record(agent_id, f"slow-{unique}", "progress", {"n": n})
        events = await asyncio.wait_for(reader, 10)
        assert [e.detail["n"] for e in events] == list(range(30))
        assert slow.dropped
        assert await slow.next(1) is None
        async with gw.client() as client:
            metrics = (await client.get("/metrics")).text
        assert 'mosaic_gateway_feed_clients_dropped_total{transport="sse"} 1.0' in metrics
        assert 'mosaic_gateway_events_streamed_total{transport="sse"} 30.0' in metrics
    finally:
        server.should_exit = True
        await task


async def test_feed_auth_and_bad_parameters(gateway: Gateway, ws_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        bad = await http.get("/events/stream", params={"token": "wrong"})
        assert bad.status_code == 401
        since_alone = await http.get(
            "/events/stream", params={"since": 3}, headers={"Authorization": f"Bearer {OPERATOR}"}
        )
        assert since_alone.status_code == 422
        assert since_alone.json()["error"]["field"] == "since"
        bad_id = await http.get(
            "/events/stream",
            params={"agentId": "a b"},
            headers={"Authorization": f"Bearer {OPERATOR}"},
        )
        assert bad_id.status_code == 422
        assert bad_id.json()["error"]["field"] == "agentId"
    ready = asyncio.Event()
    reader = asyncio.create_task(
        sse_events(gateway.url, {"token": OPERATOR}, 1, headers={}, ready=ready)
    )
    await asyncio.wait_for(ready.wait(), 5)
    reader.cancel()
    # refused at the handshake (an HTTP answer, never an open socket)
    for url, protocols, status in (
        (ws_url, None, 401),
        (f"{ws_url}?token=wrong", None, 401),
        (ws_url, [Subprotocol("mosaic.bearer"), Subprotocol("mosaic.bearer.d3Jvbmc")], 401),
        (ws_url, [Subprotocol("mosaic.bearer.!!")], 401),
    ):
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, subprotocols=protocols, open_timeout=5)
        assert refused.value.response.status_code == status
        assert b'"unauthorized"' in refused.value.response.body
    async with connect(f"{ws_url}?since=1&token={OPERATOR}") as ws:
        message = json.loads(await ws.recv())
        assert message["error"]["field"] == "since"


async def test_feed_clients_gauge(gateway: Gateway, ws_url: str) -> None:
    async def gauge() -> str:
        async with gateway.client() as client:
            text = (await client.get("/metrics")).text
        return next(
            line
            for line in text.splitlines()
            if line.startswith('mosaic_gateway_feed_clients{transport="ws"}')
        )

    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {OPERATOR}"}) as ws:
        await ws.recv()
        assert (await gauge()).endswith(" 1.0")
    for _ in range(50):
        if (await gauge()).endswith(" 0.0"):
            break
        await asyncio.sleep(0.05)
    assert (await gauge()).endswith(" 0.0")


async def test_websockets_over_the_cap_are_refused_before_accept(
    nats_url: str, valkey_url: str, unique: str
) -> None:
    gw, server, task = await start_gateway(
        nats_url, valkey_url, f"cap{unique}", ws_max_connections=2
    )
    url = gw.url.replace("http://", "ws://") + "/events/ws"
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    try:
        async with connect(url, additional_headers=auth) as one:
            assert json.loads(await one.recv())["type"] == "ready"
            async with connect(url, additional_headers=auth) as two:
                assert json.loads(await two.recv())["type"] == "ready"
                with pytest.raises(InvalidStatus) as refused:
                    await connect(url, additional_headers=auth, open_timeout=5)
                assert refused.value.response.status_code == 503
                assert b"too_many_connections" in refused.value.response.body
        # the places are given back once the clients leave
        for _ in range(50):
            if gw.app.state.resources.feed.count("ws") == 0:
                break
            await asyncio.sleep(0.05)
        async with connect(url, additional_headers=auth) as again:
            assert json.loads(await again.recv())["type"] == "ready"
        async with gw.client() as client:
            text = (await client.get("/metrics")).text
        assert 'mosaic_gateway_ws_refused_total{reason="full"} 1.0' in text
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
