"""A federation peer's daily budget on the spoke (issue 23, budgets): its agents' spend
is counted per peer (``GET /spend``'s ``byPeer``) and, once it reaches the peer's
``maxUsdPerDay``, the peer's spawns are refused (signed, 429 ``budget_exhausted``)
while this instance's own tasks and other peers are not held.

Scripted agents whose plan reports usage; the ``scripted`` model is priced at the
default price ($15 / $75 per million input / output tokens).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from shared.federation.envelope import check_signature, parse
from tests.integration.federation.conftest import FakePeer, Instance, register, spawn_body
from tests.systems import wait_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SPENDING_PLAN = [
    {"tool": "write_file", "input": {"path": "hello.py", "content": "print('hi')\n"},
     "usage": {"input": 1000, "output": 1000}},  # $0.09
    {"tool": "finish", "input": {"summary": "added hello.py"}, "usage": {"input": 0, "output": 0}},
]  # fmt: skip


@pytest.fixture(scope="module")
def spoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("spoke"),
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "scripted",
            "MOSAIC_SANDBOX": "none",
            "TASK_ACK_WAIT_S": "5",
            "MOSAIC_INSTANCE_ID": f"spoke-{secrets.token_hex(3)}",
            "FEDERATION_ENABLED": "1",
            "DEFAULT_GATE_PROFILE": "minimal",
        },
    )
    with Supervisor(config) as system:
        yield Instance("spoke", system)


def peer(spoke: Instance, root: Path, **limits: Any) -> FakePeer:
    fake = FakePeer.create(spoke)
    register(spoke, fake.info(), allowedRepositories=[str(root)], **limits)
    fake.handshake()
    return fake


def command(fake: FakePeer, body: dict[str, Any]) -> dict[str, Any]:
    answer = fake.post(fake.envelope("agent.spawn", body))
    assert answer.status_code == 200, answer.text
    envelope = parse(answer.content)
    check_signature(envelope, fake.spoke.identity()["publicKey"])
    return envelope.payload


def test_a_peer_over_its_daily_budget_is_refused_and_only_that_peer(
    spoke: Instance, remote_repo: Path, tmp_path_factory: pytest.TempPathFactory, unique: str
) -> None:
    root = tmp_path_factory.getbasetemp()
    thrifty = peer(spoke, root, maxUsdPerDay=0.05)
    other = peer(spoke, root)
    first = command(thrifty, spawn_body(remote_repo, f"p1-{unique}", SPENDING_PLAN))
    assert first["ok"] is True, first
    with spoke.http() as http:
        record = wait_final(http, first["result"]["agentId"])
        assert record["state"] == "completed", record
        assert record["spend"]["usd"] == pytest.approx(0.09)
        by_peer = http.get("/spend").json()["today"]["byPeer"]
        assert by_peer == {thrifty.peer_id: pytest.approx(0.09)}

        again = command(thrifty, spawn_body(remote_repo, f"p2-{unique}", SPENDING_PLAN))
        assert again["ok"] is False
        assert again["status"] == 429
        assert again["error"]["code"] == "budget_exhausted"
        assert f"peer {thrifty.peer_id} spent its daily budget here" in again["error"]["message"]
        assert "maxUsdPerDay" in again["error"]["message"]
        assert http.get(f"/agents?taskId={thrifty.peer_id}.p2-{unique}").json()["total"] == 0

        # another peer, and this instance's own tasks, are not held by it
        theirs = command(other, spawn_body(remote_repo, f"o1-{unique}"))
        assert theirs["ok"] is True, theirs
        own = http.post("/agents/spawn", json=spawn_body(remote_repo, f"own-{unique}"))
        assert own.status_code == 202, own.text
        assert http.get("/queue").json()["hold"]["held"] is False
