"""The gates service over a real nats-server: the contract, YOLO and its audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.gates.app import create_app
from services.gates.runner import FixedSandboxes, SelectedSandboxes
from shared import subjects
from shared.audit import AUDIT_STREAM, KIND_GATE_SKIPPED, audit_subject
from shared.bus import make_broker, request
from shared.messages.audit import AuditEntry
from shared.messages.gates import GateCheckRequested, GateDecision
from shared.sandbox.host import HostSandboxFactory
from shared.sandbox.settings import SandboxSettings
from shared.settings import HomeSettings, NatsSettings, host_id
from tests.integration.gates.conftest import NO_MODEL, NO_SUCH_IMAGE, gates_settings
from tests.integration.gates.samples import apply_defect, build_sample, gates_toml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def client(nats_url: str, tmp_path: Path) -> AsyncIterator[NatsBroker]:
    """A running gates app (bare-host sandboxes, no model key) and a separate client broker."""
    app = create_app(
        NatsSettings(nats_url=nats_url),
        gates_settings(),
        NO_MODEL,
        HomeSettings(mosaic_home=tmp_path),
        sandboxes=FixedSandboxes(HostSandboxFactory()),
    )
    assert app.broker is not None
    async with app.broker:
        await app.broker.start()
        caller = make_broker(NatsSettings(nats_url=nats_url), "gates-test-client")
        async with caller:
            await caller.start()
            yield caller


async def audit_entries(broker: NatsBroker, agent_id: str) -> list[AuditEntry]:
    js = broker.connection.jetstream()
    sub = await js.pull_subscribe(
        audit_subject(KIND_GATE_SKIPPED),
        stream=AUDIT_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    found: list[AuditEntry] = []
    try:
        while True:
            try:
                batch = await sub.fetch(100, timeout=0.5)
            except TimeoutError:
                break
            for msg in batch:
                entry = AuditEntry.from_bytes(msg.data)
                if entry.agent_id == agent_id:
                    found.append(entry)
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return found


async def test_a_check_over_the_bus_rejects_a_failing_test(
    client: NatsBroker, tmp_path: Path, unique: str
) -> None:
    work, _ = build_sample(tmp_path, gates=gates_toml(), name="bus")
    apply_defect(work, "failing-test")
    ask = GateCheckRequested(
        agent_id=f"bus-{unique}", task_id="t", worktree=str(work), profile="minimal"
    )
    decision = await request(client, subjects.gates_check(host_id()), ask, GateDecision, 60)
    assert not decision.approved
    assert decision.error is None
    (tests,) = decision.results
    assert tests.status == "failed"
    assert "two and two make four" in tests.excerpt
    wire = decision.model_dump(mode="json")
    assert {"name", "status", "durationMs", "excerpt", "figure", "command"} <= set(
        wire["results"][0]
    )


async def test_yolo_skips_every_gate_and_audits_each_skip(
    client: NatsBroker, tmp_path: Path, unique: str
) -> None:
    work, _ = build_sample(tmp_path, gates=gates_toml(), name="yolo")
    apply_defect(work, "failing-test")  # would fail, but YOLO does not look
    agent = f"yolo-{unique}"
    ask = GateCheckRequested(
        agent_id=agent, task_id=f"task-{unique}", worktree=str(work), profile="strict", yolo=True
    )
    decision = await request(client, subjects.gates_check(host_id()), ask, GateDecision, 30)
    assert decision.approved
    assert decision.yolo
    assert [r.status for r in decision.results] == ["skipped"] * 6
    assert all("YOLO mode" in r.excerpt for r in decision.results)
    assert "YOLO" in decision.summary
    entries = await audit_entries(client, agent)
    assert sorted(e.detail["gate"] for e in entries) == sorted(
        ["typecheck", "lint", "tests", "coverage", "build", "ai-review"]
    )
    entry = entries[0]
    assert entry.kind == KIND_GATE_SKIPPED
    assert entry.task_id == f"task-{unique}"
    assert entry.reason == "YOLO mode"
    assert entry.actor.startswith("gates-")
    assert entry.detail["profile"] == "strict"


async def test_bad_request_body_gets_no_crash(client: NatsBroker) -> None:
    ask = GateCheckRequested(agent_id="x", task_id="t", worktree="/nonexistent/wt")
    decision = await request(client, subjects.gates_check(host_id()), ask, GateDecision, 10)
    assert decision.error is not None
    assert decision.error.code == "bad_worktree"
    # the service still answers health probes
    health = await client.request(b"", subjects.health("gates"), timeout=5)
    assert b'"status":"ok"' in health.body.replace(b" ", b"")


async def test_without_a_sandbox_the_service_answers_every_check_with_the_reason(
    nats_url: str, tmp_path: Path, no_image_sandbox: SandboxSettings
) -> None:
    app = create_app(
        NatsSettings(nats_url=nats_url),
        gates_settings(),
        NO_MODEL,
        HomeSettings(mosaic_home=tmp_path),
        sandboxes=SelectedSandboxes(no_image_sandbox),
    )
    assert app.broker is not None
    work, _ = build_sample(tmp_path, gates=gates_toml(only_tests=True), name="nosbx")
    async with app.broker:
        await app.broker.start()
        caller = make_broker(NatsSettings(nats_url=nats_url), "gates-test-nosbx")
        async with caller:
            await caller.start()
            ask = GateCheckRequested(agent_id="x", task_id="t", worktree=str(work))
            for _ in range(2):  # tried again each time, failing closed each time
                decision = await request(
                    caller, subjects.gates_check(host_id()), ask, GateDecision, 30
                )
                assert not decision.approved
                assert decision.error is not None
                assert NO_SUCH_IMAGE in decision.error.message
