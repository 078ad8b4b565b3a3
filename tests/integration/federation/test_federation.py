"""Federation end to end: two real instances (hub and spoke), signed commands over HTTP
between their gateways, agents running on the spoke's normal paths."""

from __future__ import annotations

import json
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git
from tests.integration.federation.conftest import (
    SLEEP_PLAN,
    Instance,
    spawn_body,
    wait_for,
)
from tests.systems import FINAL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def remote_status(hub: Instance, peer_id: str, agent_id: str) -> dict[str, Any]:
    with hub.http() as http:
        answer = http.get(f"/federation/peers/{peer_id}/agents/{agent_id}/status")
    assert answer.status_code == 200, answer.text
    agent: dict[str, Any] = answer.json()["agent"]
    return agent


def remote_spawn(hub: Instance, peer_id: str, body: dict[str, Any]) -> dict[str, Any]:
    with hub.http() as http:
        answer = http.post(f"/federation/peers/{peer_id}/agents/spawn", json=body)
    assert answer.status_code == 202, answer.text
    accepted: dict[str, Any] = answer.json()
    return accepted


def local_status(instance: Instance, agent_id: str) -> dict[str, Any]:
    with instance.http() as http:
        record: dict[str, Any] = http.get(f"/agents/{agent_id}/status").json()
    return record


def test_identity_is_created_at_first_start_with_a_private_key_only_its_owner_reads(
    instances: tuple[Instance, Instance],
) -> None:
    hub, _ = instances
    key = hub.system.config.home / "secrets" / "federation-ed25519.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    identity = hub.identity()
    assert identity["instanceId"].startswith("hub-")
    assert identity["url"] == hub.url
    assert (
        identity["publicKey"]
        in (hub.system.config.home / "federation" / "identity.json").read_text()
    )


def test_handshake_activates_both_sides_and_is_audited(linked: tuple[Instance, Instance]) -> None:
    hub, spoke = linked
    for me, other in ((hub, spoke), (spoke, hub)):
        with me.http() as http:
            peers = {p["peerId"]: p for p in http.get("/federation/peers").json()}
        assert peers[other.instance_id]["state"] == "active"
        assert peers[other.instance_id]["activatedAt"]
        changes = [
            e["detail"]["change"]
            for e in me.audit()
            if e["kind"] == "federation"
            and e["detail"]["act"] == "peer"
            and e["detail"]["peerId"] == other.instance_id
        ]
        assert changes == ["registered", "activated"]


def test_spawn_on_the_spoke_completes_and_pushes_to_the_spokes_remote(
    linked: tuple[Instance, Instance], remote_repo: Path, unique: str
) -> None:
    hub, spoke = linked
    spoke_id, hub_id = spoke.instance_id, hub.instance_id
    accepted = remote_spawn(hub, spoke_id, spawn_body(remote_repo, f"fed-{unique}"))
    agent_id = accepted["agentId"]
    assert accepted["peerId"] == spoke_id
    assert accepted["taskId"] == f"{hub_id}.fed-{unique}"
    record = wait_for(lambda: (r := remote_status(hub, spoke_id, agent_id))["state"] in FINAL and r)
    assert record["state"] == "completed", record
    assert git(remote_repo, "show", f"{record['pushedBranch']}:hello.py") == "print('hi')"
    # the hub lists it, marked with its instance, with its last known state
    with hub.http() as http:
        listed = http.get("/federation/agents").json()
    mine = [a for a in listed["agents"] if a["agentId"] == agent_id]
    assert mine
    assert mine[0]["peerId"] == spoke_id
    assert mine[0]["state"] == "completed"
    # the spoke ran it on its normal path, and its history and audit name the hub
    with spoke.http() as http:
        events = http.get(f"/agents/{agent_id}/events").json()
    assert any(e["detail"].get("requestedBy") == f"peer:{hub_id}" for e in events)
    assert any(
        e["kind"] == "federation"
        and e["detail"]["act"] == "command"
        and e["actor"] == f"peer:{hub_id}"
        and e["agentId"] == agent_id
        for e in spoke.audit()
    )


def test_kill_a_running_remote_agent_from_the_hub(
    linked: tuple[Instance, Instance], remote_repo: Path, unique: str
) -> None:
    hub, spoke = linked
    spoke_id, hub_id = spoke.instance_id, hub.instance_id
    agent_id = remote_spawn(hub, spoke_id, spawn_body(remote_repo, f"k-{unique}", SLEEP_PLAN))[
        "agentId"
    ]
    wait_for(lambda: remote_status(hub, spoke_id, agent_id)["state"] == "running")
    with hub.http() as http:
        answer = http.post(f"/federation/peers/{spoke_id}/agents/{agent_id}/kill")
    assert answer.status_code == 200, answer.text
    assert answer.json()["killed"] is True
    assert answer.json()["state"] == "killed"
    with spoke.http() as http:
        events = http.get(f"/agents/{agent_id}/events").json()
    killed = [e for e in events if e["state"] == "killed"]
    assert killed
    assert killed[0]["detail"]["requestedBy"] == f"peer:{hub_id}"


def test_the_spoke_down_gives_a_clear_502_or_504_naming_it_and_recovers(
    linked: tuple[Instance, Instance], remote_repo: Path, unique: str
) -> None:
    hub, spoke = linked
    spoke_id = spoke.instance_id
    agent_id = remote_spawn(hub, spoke_id, spawn_body(remote_repo, f"d-{unique}", SLEEP_PLAN))[
        "agentId"
    ]
    wait_for(lambda: remote_status(hub, spoke_id, agent_id)["state"] == "running")
    path = f"/federation/peers/{spoke_id}/agents/{agent_id}/status"
    before = len(hub.audit())
    spoke.system.stop_service("gateway", signal.SIGSTOP)  # hangs: connections go unanswered
    try:
        with hub.http() as http:
            answer = http.get(path)
        assert answer.status_code == 504, answer.text
        assert answer.json()["error"]["code"] == "peer_timeout"
        assert spoke_id in answer.json()["error"]["message"]
    finally:
        spoke.system.stop_service("gateway", signal.SIGCONT)
    spoke.system.stop_service("gateway", signal.SIGTERM)  # gone: connections refused
    try:
        with hub.http() as http:
            answer = http.get(path)
            assert answer.status_code == 502, answer.text
            assert answer.json()["error"]["code"] == "peer_unreachable"
            assert spoke_id in answer.json()["error"]["message"]
            spawn = http.post(
                f"/federation/peers/{spoke_id}/agents/spawn",
                json=spawn_body(remote_repo, f"d2-{unique}"),
            )
            assert spawn.status_code == 502, spawn.text
            assert not [
                a
                for a in http.get("/federation/agents").json()["agents"]
                if a["taskId"].endswith(f"d2-{unique}")
            ]
        assert len(hub.audit()) == before  # nothing recorded for what did not happen
    finally:
        spoke.system.start_service("gateway")
        spoke.system.wait_healthy(30)
    # the agent ran on meanwhile; the hub reaches it again
    assert remote_status(hub, spoke_id, agent_id)["state"] == "running"
    with hub.http() as http:
        assert http.post(f"/federation/peers/{spoke_id}/agents/{agent_id}/kill").json()["killed"]


def test_federated_kill_all_stops_the_hubs_agents_and_those_it_spawned_on_the_spoke(
    linked: tuple[Instance, Instance], remote_repo: Path, unique: str
) -> None:
    hub, spoke = linked
    spoke_id, hub_id = spoke.instance_id, hub.instance_id
    with hub.http() as http:
        local = http.post("/agents/spawn", json=spawn_body(remote_repo, f"l-{unique}", SLEEP_PLAN))
    assert local.status_code == 202, local.text
    local_id = local.json()["agentId"]
    remote_id = remote_spawn(hub, spoke_id, spawn_body(remote_repo, f"r-{unique}", SLEEP_PLAN))[
        "agentId"
    ]
    with spoke.http() as http:
        own = http.post("/agents/spawn", json=spawn_body(remote_repo, f"o-{unique}", SLEEP_PLAN))
    own_id = own.json()["agentId"]
    wait_for(lambda: local_status(hub, local_id)["state"] == "running")
    wait_for(lambda: local_status(spoke, remote_id)["state"] == "running")
    wait_for(lambda: local_status(spoke, own_id)["state"] == "running")
    try:
        with hub.http() as http:
            assert http.post("/federation/kill-all").status_code == 403
        with hub.http(admin=True) as http:
            answer = http.post("/federation/kill-all")
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["instance"] == hub_id
        assert {a["agentId"]: a["killed"] for a in report["local"]}.get(local_id) is True
        (peer,) = report["peers"]
        assert peer["peerId"] == spoke_id
        assert peer["ok"] is True
        assert {a["agentId"]: a["killed"] for a in peer["agents"]} == {remote_id: True}
        assert local_status(hub, local_id)["state"] == "killed"
        assert local_status(spoke, remote_id)["state"] == "killed"
        assert local_status(spoke, own_id)["state"] == "running"  # the spoke's own agent lives
        hub_trail = [e for e in hub.audit() if e["detail"].get("act") == "kill_all"]
        assert hub_trail
        assert hub_id in hub_trail[-1]["actor"]
        assert any(
            e["kind"] == "federation"
            and e["detail"]["act"] == "command"
            and e["actor"] == f"peer:{hub_id}"
            and e["detail"].get("type") == "agent.kill_all"
            for e in spoke.audit()
        )
        with spoke.http() as http:
            events = http.get(f"/agents/{remote_id}/events").json()
        assert [e["detail"].get("requestedBy") for e in events if e["state"] == "killed"] == [
            f"peer:{hub_id}"
        ]
    finally:
        with hub.http(admin=True) as http:
            http.post("/agents/resume")
        with spoke.http() as http:
            http.post(f"/agents/{own_id}/kill")


def test_the_cli_drives_federation_through_the_client(
    linked: tuple[Instance, Instance],
    remote_repo: Path,
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mosaic.cli import main

    hub, spoke = linked
    spoke_id = spoke.instance_id
    operator = ["--url", hub.url, "--token", hub.system.tokens["MOSAIC_API_TOKEN"]]
    admin = ["--url", hub.url, "--token", hub.system.tokens["MOSAIC_ADMIN_TOKEN"]]
    assert main(["federation", "identity", *operator]) == 0
    out = capsys.readouterr().out
    assert hub.instance_id in out
    assert hub.identity()["publicKey"] in out
    # offline, from a home with no gateway: the identity is created there
    offline = ["--url", "http://127.0.0.1:9", "--timeout", "1"]
    assert main(["--home", str(tmp_path), "federation", "identity", *offline, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert (tmp_path / "secrets" / "federation-ed25519.pem").exists()
    assert created["url"] == "http://127.0.0.1:9"
    assert main(["federation", "peers", "list", *operator]) == 0
    assert f"{spoke_id}  active" in capsys.readouterr().out
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(SLEEP_PLAN))
    spawn = ["federation", "spawn", spoke_id, *operator, "--json", "--repo", str(remote_repo)]
    assert main([*spawn, "--item", "x", "--plan", str(plan), "--task-id", f"cli-{unique}"]) == 0
    agent_id = json.loads(capsys.readouterr().out)["agentId"]
    assert main(["federation", "agents", *operator]) == 0
    assert agent_id in capsys.readouterr().out
    assert main(["federation", "status", spoke_id, agent_id, *operator]) == 0
    assert "instance" in capsys.readouterr().out
    assert main(["federation", "kill", spoke_id, agent_id, *operator]) == 0
    out = capsys.readouterr().out
    deadline = time.monotonic() + 30  # the kill answers after a bounded wait; a loaded
    while f"{agent_id}  on {spoke_id}  killed" not in out:  # machine may need longer
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
        assert main(["federation", "status", spoke_id, agent_id, *operator, "--json"]) == 0
        state = json.loads(capsys.readouterr().out)["agent"]["state"]
        if state == "killed":
            break
    # an operator may not register peers
    key = hub.identity()["publicKey"]
    add = ["federation", "peers", "add", "other-1", "--peer-url", "http://x:1", "--public-key", key]
    assert main([*add, *operator]) == 1
    assert "admin" in capsys.readouterr().err
    assert main([*add, *admin, "--allow-repo", "/srv"]) == 0
    assert "other-1  pending" in capsys.readouterr().out
    assert main(["federation", "peers", "revoke", "other-1", *admin]) == 0
    assert "other-1  revoked" in capsys.readouterr().out
