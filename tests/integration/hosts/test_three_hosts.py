"""Three hosts on one machine, no shared workspace: host 1 runs NATS, Valkey, the gateway
and its own spawner, gitops, gates and killswitch (``mosaic up``); hosts 2 and 3 join it
(``mosaic up --join``: the four per-host services over a MOSAIC_HOME of their own, the
first host's servers, each service as its own NATS user with the copied passwords).

Everything is read from the system and the disk, never assumed: each agent's record
names its host; the bare remote's reflog counts the pushes; gitops's fence files
(``<home>/repos/.fences/<agentId>``, written by every worktree, commit, push and removal
request of an agent) say which hosts' gitops touched it.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests.chaos.evidence import pushes_per_branch
from mosaic import natsauth
from mosaic.embedded import free_port
from mosaic.supervisor import HOST_SERVICES, Supervisor, SystemConfig
from tests.integration.hosts.conftest import spawn
from tests.integration.killswitch.helpers import (
    admin,
    agent_processes,
    events,
    sleeper,
    wait_state,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300), pytest.mark.serial]

HOSTS = ("h1", "h2", "h3")
SLOTS = 4
"""Agents each host's spawner runs at once."""
ENV = {
    "MOSAIC_PROVIDER": "scripted",
    "MOSAIC_SANDBOX": "none",
    "SPAWNER_CONCURRENCY": str(SLOTS),
    "TASK_ACK_WAIT_S": "30",
}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Supervisor]]:
    """Host 1 with the servers and the gateway; hosts 2 and 3 joined to it."""
    first = Supervisor(
        SystemConfig(
            home=tmp_path_factory.mktemp("h1"),
            gateway_port=free_port(),
            env=ENV,
            host_id="h1",
        )
    )
    started: dict[str, Supervisor] = {}
    began = time.monotonic()
    try:
        first.start(timeout=120)
        started["h1"] = first
        for host in HOSTS[1:]:
            home = tmp_path_factory.mktemp(host)
            # what an operator copies from the first host: the NATS users' passwords
            shutil.copytree(natsauth.passwords_dir(first.config.home), natsauth.passwords_dir(home))
            joined = Supervisor(
                SystemConfig(
                    home=home,
                    nats_url=first.nats_server_url,
                    valkey_url=first.valkey_url,
                    env=ENV,
                    services=HOST_SERVICES,
                    host_id=host,
                )
            )
            joined.start(timeout=120)
            started[host] = joined
        print(f"\nthree hosts up in {time.monotonic() - began:.1f}s")
        yield started
    finally:
        for host in reversed(list(started)):
            started[host].stop()
        if "h1" not in started:
            first.stop()


def homes(hosts: dict[str, Supervisor]) -> dict[str, Path]:
    return {host: sup.config.home for host, sup in hosts.items()}


def touched_by(homes: dict[str, Path], agent_id: str) -> set[str]:
    """The hosts whose gitops wrote the agent's fence (it touched the agent's repository)."""
    return {
        host for host, home in homes.items() if (home / "repos" / ".fences" / agent_id).exists()
    }


def test_the_joined_hosts_run_their_own_services_only(hosts: dict[str, Supervisor]) -> None:
    for host in HOSTS[1:]:
        assert set(hosts[host].procs) == set(HOST_SERVICES), host
        assert not (hosts[host].config.home / "nats").exists(), "a joined host ran a nats-server"
    with admin(hosts["h1"]) as http:
        spawners = http.get("/health").json()["spawners"]
    assert len(spawners) >= 3, spawners


def test_thirty_agents_across_three_hosts_each_on_its_own_workspace(
    hosts: dict[str, Supervisor], remote: Path
) -> None:
    began = time.monotonic()
    with admin(hosts["h1"]) as http:
        ids = [
            spawn(
                http,
                remote,
                f"many-{n}",
                [
                    {"tool": "write_file", "input": {"path": f"f{n}.txt", "content": f"{n}\n"}},
                    {"tool": "finish", "input": {"summary": f"wrote f{n}.txt"}},
                ],
            )
            for n in range(30)
        ]
        records = wait_state(http, ids, {"completed", "failed", "killed"}, timeout=180)
    print(f"30 agents over three hosts ended in {time.monotonic() - began:.1f}s")
    not_completed = {a: (r["state"], r.get("error")) for a, r in records.items()
                     if r["state"] != "completed"}  # fmt: skip
    assert not not_completed, not_completed
    pushes = pushes_per_branch(remote)
    assert len(pushes) == 30, pushes
    for agent_id, record in records.items():
        assert pushes[record["pushedBranch"]] == 1, (agent_id, pushes[record["pushedBranch"]])
    by_host = {h: [a for a, r in records.items() if r["host"] == h] for h in HOSTS}
    assert all(by_host.values()), {h: len(a) for h, a in by_host.items()}
    where = homes(hosts)
    for agent_id, record in records.items():
        assert touched_by(where, agent_id) == {record["host"]}, (agent_id, record["host"])
    for host, home in where.items():  # nothing of another host's agents on this disk
        others = {a for a, r in records.items() if r["host"] != host}
        names = {p.name for p in (home / "repos").rglob("*")}
        assert not {a for a in others if any(a in n for n in names)}, host


def test_kill_all_kills_the_agents_of_every_host(
    hosts: dict[str, Supervisor], remote: Path
) -> None:
    with admin(hosts["h1"]) as http:
        ids = [spawn(http, remote, f"sleep-{n}", sleeper(120)) for n in range(SLOTS * 3)]
        running = wait_state(http, ids, {"running"}, timeout=90)
        assert {r["host"] for r in running.values()} == set(HOSTS), running
        asked = time.monotonic()
        answer = http.post("/agents/kill-all")
        assert answer.status_code == 200, answer.text
        killed = wait_state(http, ids, {"killed"}, timeout=30)
        elapsed = time.monotonic() - asked
        try:
            assert all(r["state"] == "killed" for r in killed.values())
            deadline = time.monotonic() + 10
            alive = {a: agent_processes(a) for a in ids}
            while any(alive.values()) and time.monotonic() < deadline:
                time.sleep(0.1)
                alive = {a: agent_processes(a) for a in ids}
            assert not any(alive.values()), alive
            print(f"kill-all over 3 hosts: {len(ids)} agents killed in {elapsed:.2f}s")
        finally:
            assert http.post("/agents/resume").status_code == 200


def test_a_hung_spawners_agent_is_ended_by_its_own_hosts_killswitch(
    hosts: dict[str, Supervisor], remote: Path
) -> None:
    """Host h2's spawner hangs: h2's killswitch ends its agent (sandbox, worktree through
    h2's gitops); the other hosts' killswitches leave it alone and say nothing."""
    with admin(hosts["h1"]) as http:
        ids = [spawn(http, remote, f"hung-{n}", sleeper(120)) for n in range(SLOTS * 3)]
        running = wait_state(http, ids, {"running"}, timeout=90)
        agent_id = next(a for a, r in running.items() if r["host"] == "h2")
        others = [a for a in ids if a != agent_id]
        for other in others:  # only the one agent of h2 stays
            assert http.post(f"/agents/{other}/kill").status_code == 200
        hosts["h2"].stop_service("spawner", signal.SIGSTOP)
        try:
            answer = http.post(f"/agents/{agent_id}/kill")
            assert answer.status_code == 200, answer.text
            assert answer.json()["state"] == "killed"
            deadline = time.monotonic() + 10
            while agent_processes(agent_id) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert agent_processes(agent_id) == []
            killed = [e for e in events(http, agent_id) if e.get("state") == "killed"]
            assert killed[0]["detail"]["by"] == "killswitch"
            worktree = str(running[agent_id]["worktree"])
            assert worktree.startswith(str(hosts["h2"].config.home)), worktree
            deadline = time.monotonic() + 20
            while Path(worktree).exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not Path(worktree).exists(), "h2's gitops did not remove the worktree"
        finally:
            hosts["h2"].stop_service("spawner", signal.SIGCONT)
        deadline = time.monotonic() + 10
        kills: list[dict[str, Any]] = []
        while not kills and time.monotonic() < deadline:
            audit = http.get("/audit", params={"agentId": agent_id}).json()
            kills = [a for a in audit if a["kind"] == "kill"]
            time.sleep(0.2)
        time.sleep(1.0)  # another host's entry, if one were written, has arrived too
        kills = [a for a in http.get("/audit", params={"agentId": agent_id}).json()
                 if a["kind"] == "kill"]  # fmt: skip
        assert [a["detail"]["host"] for a in kills] == ["h2"], kills
        assert kills[0]["detail"]["byKillswitch"] == 1
