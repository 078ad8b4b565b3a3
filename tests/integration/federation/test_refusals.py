"""Everything the spoke refuses does nothing: no agent spawned, none killed.

A hand-driven fake peer (its own key pair, its own envelopes) talks to the spoke
directly, so each defect can be made on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.federation.envelope import Envelope, check_signature, now_ms, parse
from shared.messages.base import utcnow
from shared.messages.spawners import SpawnerCapability
from shared.spawners import SpawnerRegistry
from tests.integration.federation.conftest import (
    SLEEP_PLAN,
    FakePeer,
    Instance,
    register,
    spawn_body,
    wait_for,
)
from tests.systems import FINAL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def fake(linked: tuple[Instance, Instance], repos_root: Path) -> FakePeer:
    """A peer the spoke knows and has handshaken with, allowed one agent."""
    _, spoke = linked
    peer = FakePeer.create(spoke)
    register(spoke, peer.info(), maxAgents=1, allowedRepositories=[str(repos_root)])
    peer.handshake()
    return peer


def outcome(fake: FakePeer, answer: httpx.Response) -> dict[str, Any]:
    """The payload of the spoke's signed answer, after checking its signature."""
    assert answer.status_code == 200, answer.text
    envelope = parse(answer.content)
    check_signature(envelope, fake.spoke.identity()["publicKey"])
    assert envelope.recipient == fake.peer_id
    assert envelope.type == "response"
    return envelope.payload


def refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code, answer.text


def test_a_tampered_payload_is_refused(fake: FakePeer, remote_repo: Path, unique: str) -> None:
    before = fake.spoke.agent_total()
    signed = fake.envelope("agent.spawn", spawn_body(remote_repo, f"t-{unique}"))
    data = signed.model_dump(mode="json")
    data["payload"]["context"]["workItems"] = ["rm -rf everything"]
    refused(fake.post(data), 401, "bad_signature")
    data = signed.model_dump(mode="json")
    data["payload"]["priority"] = 1  # any field, even one that looks harmless
    refused(fake.post(data), 401, "bad_signature")
    assert fake.spoke.agent_total() == before


def test_a_bad_signature_is_refused(fake: FakePeer, remote_repo: Path, unique: str) -> None:
    before = fake.spoke.agent_total()
    data = fake.envelope("agent.spawn", spawn_body(remote_repo, f"s-{unique}")).model_dump(
        mode="json"
    )
    data["signature"] = base64.b64encode(os.urandom(64)).decode()
    refused(fake.post(data), 401, "bad_signature")
    data["signature"] = "not base64!"
    refused(fake.post(data), 401, "bad_signature")
    # signed by another key under the fake peer's name
    impostor = FakePeer.create(fake.spoke)
    forged = impostor.envelope("agent.spawn", spawn_body(remote_repo, f"s2-{unique}"))
    forged_data = forged.model_dump(mode="json")
    forged_data["sender"] = fake.peer_id
    refused(fake.post(forged_data), 401, "bad_signature")
    assert fake.spoke.agent_total() == before


def test_a_stale_or_future_timestamp_is_refused(
    fake: FakePeer, remote_repo: Path, unique: str
) -> None:
    before = fake.spoke.agent_total()
    for offset in (-5 * 60_000, 5 * 60_000):
        envelope = fake.envelope(
            "agent.spawn",
            spawn_body(remote_repo, f"o{offset}-{unique}"),
            timestamp=now_ms() + offset,
        )
        refused(fake.post(envelope), 401, "stale_message")
    assert fake.spoke.agent_total() == before


def test_a_replayed_message_is_not_executed_again(
    fake: FakePeer, remote_repo: Path, unique: str
) -> None:
    before = fake.spoke.agent_total()
    envelope = fake.envelope("agent.spawn", spawn_body(remote_repo, f"r-{unique}"))
    first = fake.post(envelope)
    result = outcome(fake, first)
    assert result["ok"] is True
    assert result["status"] == 202
    # the very same message again (a retry, or an eavesdropper's replay): the stored
    # answer, byte for byte, and nothing executed
    again = fake.post(envelope)
    assert again.status_code == 200
    assert again.headers["Mosaic-Federation-Repeat"] == "1"
    assert again.content == first.content
    # the same message id with other content, properly signed: refused
    altered = fake.envelope(
        "agent.spawn",
        spawn_body(remote_repo, f"r2-{unique}"),
        message_id=envelope.message_id,
    )
    refused(fake.post(altered), 409, "replayed_message")
    assert fake.spoke.agent_total() == before + 1
    agent_id = result["result"]["agentId"]
    wait_for(lambda: _status(fake, agent_id)["state"] in FINAL)


def _status(fake: FakePeer, agent_id: str) -> dict[str, Any]:
    answer = outcome(fake, fake.post(fake.envelope("agent.status", {"agentId": agent_id})))
    assert answer["ok"] is True, answer
    record: dict[str, Any] = answer["result"]
    return record


def test_an_unknown_peer_is_refused(
    linked: tuple[Instance, Instance], remote_repo: Path, unique: str
) -> None:
    _, spoke = linked
    stranger = FakePeer.create(spoke, "stranger")
    before = spoke.agent_total()
    refused(
        stranger.post(stranger.envelope("agent.spawn", spawn_body(remote_repo, f"u-{unique}"))),
        403,
        "unknown_peer",
    )
    hello = stranger.envelope("handshake.hello", {"challenge": secrets.token_urlsafe(32)})
    refused(stranger.post(hello, "/federation/handshake"), 403, "unknown_peer")
    assert spoke.agent_total() == before


def test_a_pending_or_revoked_peer_is_refused(
    linked: tuple[Instance, Instance], repos_root: Path, remote_repo: Path, unique: str
) -> None:
    _, spoke = linked
    peer = FakePeer.create(spoke, "revoked")
    register(spoke, peer.info(), maxAgents=5, allowedRepositories=[str(repos_root)])
    before = spoke.agent_total()
    body = spawn_body(remote_repo, f"p-{unique}")
    refused(peer.post(peer.envelope("agent.spawn", body)), 403, "peer_not_active")  # pending
    peer.handshake()
    with spoke.http(admin=True) as http:
        answer = http.post(f"/federation/peers/{peer.peer_id}/revoke")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "revoked"
    refused(peer.post(peer.envelope("agent.spawn", body)), 403, "peer_not_active")
    refused(peer.post(peer.envelope("agent.kill_all", {})), 403, "peer_not_active")
    hello = peer.envelope("handshake.hello", {"challenge": secrets.token_urlsafe(32)})
    refused(peer.post(hello, "/federation/handshake"), 403, "peer_not_active")
    assert spoke.agent_total() == before
    acts = [
        e["detail"]
        for e in spoke.audit()
        if e["kind"] == "federation" and e["detail"].get("peerId") == peer.peer_id
    ]
    assert [a["change"] for a in acts] == ["registered", "activated", "revoked"]


def test_a_message_for_another_instance_is_refused(
    fake: FakePeer, remote_repo: Path, unique: str
) -> None:
    envelope = fake.envelope("agent.spawn", spawn_body(remote_repo, f"w-{unique}"))
    data = envelope.model_dump(mode="json")
    data["recipient"] = "someone-else"
    resigned = fake.envelope("agent.spawn", spawn_body(remote_repo, f"w-{unique}")).model_copy(
        update={"recipient": "someone-else"}
    )
    before = fake.spoke.agent_total()
    refused(fake.post(data), 400, "invalid_envelope")
    refused(fake.post(_resign(fake, resigned)), 400, "invalid_envelope")
    assert fake.spoke.agent_total() == before


def _resign(fake: FakePeer, envelope: Envelope) -> dict[str, Any]:
    signature = base64.b64encode(fake.identity.sign(envelope.canonical())).decode()
    return envelope.model_copy(update={"signature": signature}).model_dump(mode="json")


def test_a_peer_cannot_see_or_kill_an_agent_it_did_not_spawn(
    linked: tuple[Instance, Instance], fake: FakePeer, remote_repo: Path, unique: str
) -> None:
    hub, spoke = linked
    with hub.http() as http:
        answer = http.post(
            f"/federation/peers/{spoke.instance_id}/agents/spawn",
            json=spawn_body(remote_repo, f"n-{unique}", SLEEP_PLAN),
        )
    assert answer.status_code == 202, answer.text
    hubs = answer.json()["agentId"]
    with spoke.http() as http:
        own = http.post("/agents/spawn", json=spawn_body(remote_repo, f"n2-{unique}", SLEEP_PLAN))
    spokes = own.json()["agentId"]
    try:
        for agent_id in (hubs, spokes):
            wait_for(lambda a=agent_id: _local(spoke, a)["state"] == "running")
        for agent_id in (hubs, spokes):
            for type_ in ("agent.kill", "agent.status"):
                result = outcome(fake, fake.post(fake.envelope(type_, {"agentId": agent_id})))
                assert result["ok"] is False
                assert result["status"] == 404
                assert result["error"]["code"] == "not_found"
        result = outcome(fake, fake.post(fake.envelope("agent.kill_all", {})))
        assert result["ok"] is True
        assert [a for a in result["result"]["agents"] if a["agentId"] in (hubs, spokes)] == []
        assert _local(spoke, hubs)["state"] == "running"
        assert _local(spoke, spokes)["state"] == "running"
    finally:
        with hub.http() as http:
            http.post(f"/federation/peers/{spoke.instance_id}/agents/{hubs}/kill")
        with spoke.http() as http:
            http.post(f"/agents/{spokes}/kill")


def _local(instance: Instance, agent_id: str) -> dict[str, Any]:
    with instance.http() as http:
        record: dict[str, Any] = http.get(f"/agents/{agent_id}/status").json()
    return record


def test_a_peer_over_its_limits_is_refused(fake: FakePeer, remote_repo: Path, unique: str) -> None:
    spoke = fake.spoke
    before = spoke.agent_total()
    first = outcome(
        fake,
        fake.post(fake.envelope("agent.spawn", spawn_body(remote_repo, f"l-{unique}", SLEEP_PLAN))),
    )
    assert first["ok"] is True, first
    agent_id = first["result"]["agentId"]
    try:
        second = outcome(
            fake, fake.post(fake.envelope("agent.spawn", spawn_body(remote_repo, f"l2-{unique}")))
        )
        assert second["ok"] is False
        assert second["status"] == 429
        assert second["error"]["code"] == "over_limit"
        assert spoke.agent_total() == before + 1
    finally:
        killed = outcome(fake, fake.post(fake.envelope("agent.kill", {"agentId": agent_id})))
    assert killed["ok"] is True
    assert killed["result"]["killed"] is True
    # a repository outside the allowed list, even by climbing out of it
    for repo in ("/srv/elsewhere.git", f"{remote_repo}/../../../../etc"):
        body = spawn_body(Path(repo), f"x-{secrets.token_hex(3)}")
        result = outcome(fake, fake.post(fake.envelope("agent.spawn", body)))
        assert result["ok"] is False
        assert result["error"]["code"] == "repository_not_allowed"
    assert spoke.agent_total() == before + 1


def test_a_spoke_whose_spawners_cannot_run_agents_refuses_with_the_reason(
    fake: FakePeer, remote_repo: Path, unique: str
) -> None:
    """No silent queueing for a peer either: 503 ``no_spawner_ready`` with the reason,
    and the envelope is not used up (the peer may send it again once a spawner is ready)."""
    spoke = fake.spoke
    system = spoke.system
    problem = "no model: set ANTHROPIC_API_KEY (or CLAUDE_API_KEY) or MOSAIC_PROVIDER=scripted"
    now = utcnow()
    not_ready = SpawnerCapability(
        instance="spawner-without-a-model",
        ready=False,
        problems=[problem],
        started_at=now,
        expires_at=now,
    )

    async def registry(action: str) -> None:
        redis = Redis.from_url(system.valkey_url)
        try:
            spawners = SpawnerRegistry(redis)
            if action == "publish":
                await spawners.publish(not_ready, ttl_s=60)
            else:
                await spawners.withdraw(not_ready.instance)
        finally:
            await redis.aclose()

    system.stop_service("spawner")  # a clean stop withdraws its record
    before = spoke.agent_total()
    try:
        asyncio.run(registry("publish"))
        body = spawn_body(remote_repo, f"nr-{unique}")
        answer = fake.post(fake.envelope("agent.spawn", body))
        refused(answer, 503, "no_spawner_ready")
        assert problem in answer.json()["error"]["message"]
        assert spoke.agent_total() == before
    finally:
        asyncio.run(registry("withdraw"))
        system.start_service("spawner")
        system.wait_healthy(60)
