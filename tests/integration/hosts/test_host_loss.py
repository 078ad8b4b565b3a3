"""Three hosts, each with its own NATS node of one cluster and its own workspace; one host
is lost whole (its four services, its agents' processes and its NATS node SIGKILLed)
while 30 agents run, then comes back; a kill-all published on host 3's node reaches
every host.

Host 1 runs the cluster's nodes (n1, n2, n3: one per host), Valkey with a replica and
sentinels, the gateway and its own per-host services (``mosaic up --cluster``); hosts 2
and 3 join it (``mosaic up --join``), each over its own node only: when host 2 dies, its
node dies with it. Everything is read from the system: records, the bare remote's
reflog (pushes), gitops's fence files (which host touched an agent's repository), the
stream's replica state from the cluster, ``/proc`` (processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from loadtests.chaos.evidence import pushes_per_branch
from mosaic import natsauth
from mosaic.embedded import free_port
from mosaic.supervisor import HOST_SERVICES, Supervisor, SystemConfig
from shared import subjects
from shared.natsurls import parse_nats_url
from tests.integration.hosts.conftest import spawn
from tests.integration.killswitch.helpers import (
    admin,
    agent_processes,
    events,
    sleeper,
    status,
    wait_state,
)
from tests.integration.killswitch.test_nats_auth import raw_publish
from tests.systems import FINAL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420), pytest.mark.serial]

HOSTS = ("h1", "h2", "h3")
NODE_OF = {"h1": "n1", "h2": "n2", "h3": "n3"}
SLOTS = 4
AGENTS = 30
ENV = {
    "MOSAIC_PROVIDER": "scripted",
    "MOSAIC_SANDBOX": "none",
    "SPAWNER_CONCURRENCY": str(SLOTS),
    "TASK_ACK_WAIT_S": "5",
}


def join_config(first: Supervisor, host: str, home: Path) -> SystemConfig:
    """Host ``host`` joining ``first``'s servers, over its own node only."""
    assert first.nats_cluster is not None
    node = next(n for n in first.nats_cluster.nodes if n.name == NODE_OF[host])
    # what an operator copies from the first host: the NATS users' passwords
    shutil.copytree(natsauth.passwords_dir(first.config.home), natsauth.passwords_dir(home))
    return SystemConfig(
        home=home,
        nats_url=node.client_url,
        valkey_url=first.valkey_url,
        env={**ENV, **first.cluster_env},  # the sentinels and the stream replicas
        services=HOST_SERVICES,
        host_id=host,
    )


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Supervisor]]:
    first = Supervisor(
        SystemConfig(
            home=tmp_path_factory.mktemp("h1"),
            gateway_port=free_port(),
            cluster=3,
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
            joined = Supervisor(join_config(first, host, tmp_path_factory.mktemp(host)))
            joined.start(timeout=120)
            started[host] = joined
        print(f"\nthree hosts, three NATS nodes up in {time.monotonic() - began:.1f}s")
        yield started
    finally:
        for host in reversed(list(started)):
            started[host].stop()
        if "h1" not in started:
            first.stop()


def working(seconds: int, name: str) -> list[dict[str, Any]]:
    """Work for ``seconds``, then write a file (so there is a push)."""
    return [
        {"tool": "run_command", "input": {"command": f"sleep {seconds}", "timeout": 600}},
        {"tool": "write_file", "input": {"path": f"{name}.txt", "content": f"{name}\n"}},
        {"tool": "finish", "input": {"summary": f"wrote {name}.txt"}},
    ]


def lose_host(sup: Supervisor, first: Supervisor, host: str, agent_ids: list[str]) -> None:
    """SIGKILL everything of ``host``: its services, the processes of its agents
    (``agent_ids``: those whose records name it; the others' commands run on), its node."""
    for name in HOST_SERVICES:
        sup.stop_service(name, signal.SIGKILL)
    for agent_id in agent_ids:
        for pid in agent_processes(agent_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert first.nats_cluster is not None
    first.nats_cluster.server(NODE_OF[host]).kill()


async def tasks_replica(first: Supervisor, name: str) -> tuple[bool, int]:
    """Whether node ``name`` is current on the TASKS stream (leader or caught-up
    replica), and its lag in operations, as the cluster reports it."""
    nc = await nats.connect(**parse_nats_url(first.nats_url).connect_options())
    try:
        info = await nc.jetstream().stream_info(subjects.TASKS_STREAM)
    finally:
        await nc.close()
    assert info.cluster is not None
    if info.cluster.leader == name:
        return True, 0
    for peer in info.cluster.replicas or []:
        if peer.name == name:
            return bool(peer.current and not peer.offline), int(peer.lag or 0)
    return False, -1


def touched_by(hosts: dict[str, Supervisor], agent_id: str) -> set[str]:
    """The hosts whose gitops wrote the agent's fence (touched its repository)."""
    return {
        host
        for host, sup in hosts.items()
        if (sup.config.home / "repos" / ".fences" / agent_id).exists()
    }


@contextlib.contextmanager
def explained_if_stuck(hosts: dict[str, Supervisor], http: Any, ids: list[str]) -> Iterator[None]:
    """On a wait that timed out, print what the system knows of the agents still not
    final: their records, their last events, the log lines of every host naming them,
    and the TASKS consumers' counts (a CI failure then says where a task got stuck)."""
    try:
        yield
    except AssertionError:
        for agent_id in ids:
            record = status(http, agent_id)
            if record["state"] in FINAL:
                continue
            print(f"\n--- {agent_id}: {record}")
            for event in events(http, agent_id)[-6:]:
                print("  event", {k: event.get(k) for k in ("kind", "state", "detail", "ts")})
            for host, sup in hosts.items():
                for log in sorted(sup.logs.glob("*.log")):
                    lines = [ln for ln in log.read_text(errors="replace").splitlines()
                             if agent_id in ln]  # fmt: skip
                    for line in lines[-8:]:
                        print(f"  {host}/{log.name}: {line[:400]}")
        with contextlib.suppress(Exception):
            print("consumers:", asyncio.run(consumer_counts(hosts["h1"])))
        raise


async def consumer_counts(first: Supervisor) -> dict[str, tuple[int | None, ...]]:
    """Per TASKS consumer: (waiting, acks pending, redelivered)."""
    nc = await nats.connect(**parse_nats_url(first.nats_url).connect_options())
    try:
        counts: dict[str, tuple[int | None, ...]] = {}
        for info in await nc.jetstream().consumers_info(subjects.TASKS_STREAM):
            counts[info.name] = (info.num_pending, info.num_ack_pending, info.num_redelivered)
        return counts
    finally:
        await nc.close()


def h2_back(hosts: dict[str, Supervisor]) -> None:
    """Bring h2's node and services back if a failed test left them down."""
    first, lost = hosts["h1"], hosts["h2"]
    assert first.nats_cluster is not None
    node = first.nats_cluster.server(NODE_OF["h2"])
    if node.proc.poll() is not None:
        node.start_again()
        first.nats_cluster.wait_current(60, names=[NODE_OF["h2"]])
    for name in HOST_SERVICES:
        if (proc := lost.procs.get(name)) is None or proc.poll() is not None:
            lost.start_service(name)
    lost.wait_healthy(90)


def test_a_host_lost_whole_with_its_node_loses_no_task_and_pushes_nothing_twice(
    hosts: dict[str, Supervisor], remote: Path
) -> None:
    first, lost = hosts["h1"], hosts["h2"]
    with admin(first) as http:
        ids = [spawn(http, remote, f"loss-{n}", working(4, f"loss{n}")) for n in range(AGENTS)]
        deadline = time.monotonic() + 90
        on_lost: list[str] = []
        while not on_lost:
            assert time.monotonic() < deadline, "no agent ran on h2"
            records = {a: status(http, a) for a in ids}
            on_lost = [
                a for a, r in records.items() if r["state"] == "running" and r["host"] == "h2"
            ]
            time.sleep(0.1)
        on_h2 = [a for a, r in records.items() if r.get("host") == "h2"]
        lose_host(lost, first, "h2", on_h2)
        lost_at = time.monotonic()
        with explained_if_stuck(hosts, http, ids):
            records = wait_state(http, ids, FINAL, timeout=300)
        took = time.monotonic() - lost_at
    not_completed = {a: (r["state"], r.get("error")) for a, r in records.items()
                     if r["state"] != "completed"}  # fmt: skip
    assert not not_completed, not_completed
    pushes = pushes_per_branch(remote)
    twice = {b: n for b, n in pushes.items() if n != 1}
    assert not twice, twice
    assert {records[a]["pushedBranch"] for a in ids} <= set(pushes)
    for agent_id in on_lost:  # they finished elsewhere, on a fresh attempt
        record = records[agent_id]
        assert record["host"] in {"h1", "h3"}, record
        assert record["attempts"] >= 2, record
        assert touched_by(hosts, agent_id) == {"h2", record["host"]}
    print(
        f"h2 lost with its node while {len(on_lost)} of its agents ran: all {AGENTS} "
        f"completed {took:.1f}s later, each pushed once"
    )

    # the host comes back: its node catches up on the stream, its services rejoin
    assert first.nats_cluster is not None
    node = first.nats_cluster.server(NODE_OF["h2"])
    back_at = time.monotonic()
    node.start_again()
    first.nats_cluster.wait_current(60, names=[NODE_OF["h2"]])
    deadline = time.monotonic() + 30
    while not (state := asyncio.run(tasks_replica(first, NODE_OF["h2"])))[0]:
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    print(f"n2 current on TASKS {time.monotonic() - back_at:.1f}s after its restart")
    for name in HOST_SERVICES:
        lost.start_service(name)
    lost.wait_healthy(90)


def test_kill_all_on_host_3s_node_as_admin_kills_every_hosts_agents_within_a_second(
    hosts: dict[str, Supervisor], remote: Path
) -> None:
    h2_back(hosts)  # whatever the test before left
    first = hosts["h1"]
    assert first.nats_cluster is not None
    node3 = next(n for n in first.nats_cluster.nodes if n.name == NODE_OF["h3"])
    with admin(first) as http:
        ids = [spawn(http, remote, f"ka-{n}", sleeper(120)) for n in range(SLOTS * 3)]
        running = wait_state(http, ids, {"running"}, timeout=120)
        assert {r["host"] for r in running.values()} == set(HOSTS), running
        deadline = time.monotonic() + 30
        while not all(agent_processes(a) for a in ids):  # each one's command started
            assert time.monotonic() < deadline
            time.sleep(0.05)
        url = natsauth.url_for(
            node3.client_url, natsauth.ADMIN, first.nats_passwords[natsauth.ADMIN]
        )
        started = time.monotonic()
        answer = raw_publish(url, subjects.KILL_ALL, b'{"reason":"kill-all from host 3"}')
        assert "-ERR" not in answer, answer
        wait_state(http, ids, {"killed"}, timeout=1.0)
        killed = time.monotonic() - started
        left = {a: pids for a in ids if (pids := agent_processes(a))}
        assert not left, left  # a record says killed only once its processes are gone
        print(f"kill-all on n3: {len(ids)} agents on 3 hosts killed in {killed:.3f}s")
        assert http.post("/agents/resume").json()["held"] is False
