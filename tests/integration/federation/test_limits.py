"""Federation's limits at a real gateway (uvicorn, NATS, Valkey; no spawner needed):
junk at ``/federation/commands`` is rate-limited per source and never audited, and a
verified peer's spawn over the deployment's caps gets a signed refusal."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError

from services.gateway.federation.peers import Peer, PeerLimits, PeerRegistry, PeerState
from shared.audit import AUDIT_STREAM
from shared.federation.envelope import check_signature, parse, seal
from shared.federation.identity import Identity
from shared.federation.settings import FederationSettings
from tests.integration.gateway.conftest import Gateway, spawn_body, start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
async def spoke(nats_url: str, valkey_url: str, unique: str) -> AsyncIterator[Gateway]:
    """A gateway with federation on and the default caps (gate profile default: standard)."""
    gw, server, task = await start_gateway(
        nats_url, valkey_url, f"fed{unique}", federation=FederationSettings(federation_enabled=True)
    )
    yield gw
    server.should_exit = True
    await asyncio.wait_for(task, 15)


async def audit_count(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(AUDIT_STREAM)
        return int(info.state.messages)
    except NotFoundError:
        return 0
    finally:
        await nc.close()


async def test_junk_is_not_audited_and_is_rate_limited(
    spoke: Gateway, nats_url: str, remote_repo: Path, unique: str
) -> None:
    me = spoke.app.state.federation.identity.instance_id
    stranger = Identity.generate(f"stranger-{secrets.token_hex(3)}")
    signed = seal(stranger, "agent.spawn", spawn_body(remote_repo, f"j-{unique}"), me)
    before = await audit_count(nats_url)
    async with httpx.AsyncClient(base_url=spoke.url, timeout=10) as http:
        junk = [
            await http.post("/federation/commands", content=b"junk"),
            await http.post("/federation/commands", json={"type": "agent.spawn"}),
            await http.post("/federation/commands", json=signed.model_dump(mode="json")),
        ]
        assert [a.status_code for a in junk] == [400, 400, 403]
        assert await audit_count(nats_url) == before  # three junk POSTs, no entries
        statuses = [a.status_code for a in junk]
        for _ in range(17):
            statuses.append((await http.post("/federation/commands", content=b"junk")).status_code)
        last = (await http.post("/federation/handshake", content=b"junk")).status_code
        assert statuses[:10] == [400, 400, 403] + [400] * 7  # the burst (10 by default)
        assert statuses[19] == 429  # the 20th
        assert last == 429  # one bucket per source, for both paths
        limited = await http.post("/federation/commands", content=b"junk")
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
    assert await audit_count(nats_url) == before
    async with spoke.client() as http:
        metrics = (await http.get("/metrics")).text
    assert 'mosaic_gateway_federation_unverified_total{code="invalid_envelope"}' in metrics
    assert 'mosaic_gateway_federation_unverified_total{code="unknown_peer"} 1.0' in metrics
    assert 'mosaic_gateway_federation_unverified_total{code="rate_limited"}' in metrics


async def test_a_spawn_over_the_deployments_caps_is_refused(
    spoke: Gateway, remote_repo: Path, unique: str
) -> None:
    runtime = spoke.app.state.federation
    me = runtime.identity.instance_id
    peer = Identity.generate(f"capped-{secrets.token_hex(3)}")
    registry = PeerRegistry(spoke.store.redis, spoke.store.prefix)
    limits = PeerLimits(max_agents=5, allowed_repositories=[str(remote_repo.parent)])
    await registry.register(
        Peer(
            peer_id=peer.instance_id,
            url="http://127.0.0.1:9",
            public_key=peer.public_key,
            limits=limits,
        )
    )
    await registry.set_state(peer.instance_id, PeerState.ACTIVE)

    async def spawn(n: int, **fields: Any) -> dict[str, Any]:
        body = spawn_body(remote_repo, f"c{n}-{unique}", gateProfile="standard")
        for key, value in fields.items():
            if key == "options":
                body["options"] = value
            else:
                body[key] = value
        envelope = seal(peer, "agent.spawn", body, me)
        async with httpx.AsyncClient(base_url=spoke.url, timeout=10) as http:
            answer = await http.post("/federation/commands", json=envelope.model_dump(mode="json"))
        assert answer.status_code == 200, answer.text
        signed = parse(answer.content)
        check_signature(signed, runtime.identity.public_key)  # a signed refusal
        assert signed.recipient == peer.instance_id
        return signed.payload

    over = {
        "priority": spawn(1, priority=1),
        "timeout": spawn(2, options={"timeout": 7200}),
        "network": spawn(3, options={"network": True}),
        "gateProfile": spawn(4, gateProfile="minimal"),
    }
    for field, pending in over.items():
        result = await pending
        assert result["ok"] is False, (field, result)
        assert result["status"] == 403
        assert result["error"]["code"] == "over_peer_cap"
        assert field in result["error"]["message"]
    assert await spoke.store.agent_for_task(f"{peer.instance_id}.c1-{unique}") is None
    # within the caps the same peer is served (no spawner here: the task waits queued)
    fine = await spawn(5, priority=5, options={"timeout": 600})
    assert fine["ok"] is True, fine
    assert fine["status"] == 202
    strict = await spawn(6, gateProfile="strict")
    assert strict["ok"] is True, strict
