"""The gates service's handler contract, in memory (FastStream's ``TestNatsBroker``): a
malformed request is answered (not left to time out), a worktree outside the allowed
root is refused, and neither is ever an approval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from services.gates.app import create_app
from shared import subjects
from shared.messages.gates import GateCheckRequested, GateDecision
from shared.settings import HomeSettings, NatsSettings, host_id

pytestmark = pytest.mark.unit


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[NatsBroker]:
    app = create_app(
        NatsSettings(nats_url="nats://127.0.0.1:1"),  # never dialled: the broker is patched
        home=HomeSettings(mosaic_home=tmp_path / "home"),
    )
    assert isinstance(app.broker, NatsBroker)
    async with TestNatsBroker(app.broker) as patched:
        yield patched


async def decide(broker: NatsBroker, body: bytes) -> GateDecision:
    reply = await broker.request(body, subjects.gates_check(host_id()), timeout=30)
    return GateDecision.model_validate_json(reply.body)


async def test_a_malformed_check_is_answered_and_not_approved(broker: NatsBroker) -> None:
    decision = await decide(broker, b'{"agentId": "a1", "profile": "lenient"}')
    assert decision.approved is False
    assert decision.error is not None
    assert decision.error.code == "invalid_request"
    assert "taskId: Field required" in decision.error.message
    assert "worktree: Field required" in decision.error.message
    assert "profile" in decision.error.message


async def test_a_worktree_outside_the_root_is_refused(broker: NatsBroker) -> None:
    asked = GateCheckRequested(agent_id="a1", task_id="t1", worktree="/etc")
    decision = await decide(broker, asked.to_bytes())
    assert decision.approved is False
    assert decision.error is not None
    assert decision.error.code == "bad_worktree"
    assert "outside the allowed root" in decision.error.message
