"""``GET /agents/{agentId}/trace`` on a real gateway: the contract the agent page reads,
and its 404s (unknown agent, agent without a kept trace), both naming the agent."""

from __future__ import annotations

import httpx
import pytest

from shared.messages.traces import TraceSpan
from tests.integration.gateway.conftest import Gateway
from tests.integration.test_store import make_record

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_the_trace_answers_its_spans_by_start_time(
    gateway: Gateway, operator: httpx.AsyncClient, unique: str
) -> None:
    agent = f"{unique}aaaaaa"[:16]
    await gateway.store.create_agent(make_record(agent, f"task-{unique}"))
    await gateway.store.set_agent_trace(agent, f"00-{TRACE}-00f067aa0ba902b7-01", 600)
    late = TraceSpan(
        span_id="00000000000000b2",
        parent_id="00f067aa0ba902b7",
        name="attempt",
        service="spawner",
        start=2000.5,
        end=3000.0,
        attributes={"mosaic.agent_id": agent, "mosaic.attempt": 1},
    )
    root = TraceSpan(
        span_id="00f067aa0ba902b7", name="spawn", service="gateway", start=1000.0, end=1001.0
    )
    await gateway.store.add_trace_spans(TRACE, [late, root], cap=100, ttl_s=600)

    answer = await operator.get(f"/agents/{agent}/trace")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["traceId"] == TRACE
    assert [s["name"] for s in body["spans"]] == ["spawn", "attempt"]
    assert body["spans"][1] == {
        "spanId": "00000000000000b2",
        "parentId": "00f067aa0ba902b7",
        "name": "attempt",
        "service": "spawner",
        "start": 2000.5,
        "end": 3000.0,
        "attributes": {"mosaic.agent_id": agent, "mosaic.attempt": 1},
    }
    assert body["spans"][0]["parentId"] is None


async def test_an_agent_without_a_kept_trace_is_a_404_naming_it(
    gateway: Gateway, operator: httpx.AsyncClient, unique: str
) -> None:
    agent = f"{unique}bbbbbb"[:16]
    await gateway.store.create_agent(make_record(agent, f"task-{unique}"))
    answer = await operator.get(f"/agents/{agent}/trace")
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "not_found"
    assert agent in error["message"]
    assert "no trace kept" in error["message"]


async def test_an_unknown_agent_is_a_404_naming_it(operator: httpx.AsyncClient) -> None:
    answer = await operator.get("/agents/0123456789abcdef/trace")
    assert answer.status_code == 404
    assert "0123456789abcdef" in answer.json()["error"]["message"]


async def test_the_trace_needs_a_token_and_a_valid_id(gateway: Gateway) -> None:
    async with gateway.client(None) as anonymous:
        assert (await anonymous.get("/agents/0123456789abcdef/trace")).status_code == 401
    async with gateway.client() as operator:
        answer = await operator.get("/agents/not..an-id/trace")
        assert answer.status_code == 422
