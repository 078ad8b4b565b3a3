"""The system on a three-node NATS cluster and Valkey with a replica and sentinels
(``mosaic up --cluster``), losing a NATS node, then the Valkey primary, mid-run.

Every server is real (nats-server, valkey-server and valkey-server as sentinel, from the
wheels); the agents are scripted. The figures of the failovers are printed (run with
``-s``) and written down in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from redis import Redis as SyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError

from mosaic.embedded import free_port
from mosaic.natscluster import NatsCluster
from mosaic.supervisor import Supervisor, SystemConfig
from mosaic.valkeyha import current_primary, promoted_primary
from shared import subjects
from shared.audit import AUDIT_STREAM
from shared.natsurls import parse_nats_url
from tests.conftest import git
from tests.integration.killswitch.helpers import (
    admin,
    agent_processes,
    events,
    final_states,
    sleeper,
    spawn,
    wait_state,
)
from tests.integration.killswitch.test_nats_auth import raw_publish

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300), pytest.mark.serial]

AGENTS = 6
FINAL = {"completed", "failed", "killed"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("cluster") / "home",
        gateway_port=free_port(),
        cluster=3,
        env={"MOSAIC_PROVIDER": "scripted", "MOSAIC_SANDBOX": "none", "TASK_ACK_WAIT_S": "5"},
    )
    with Supervisor(config) as supervisor:
        yield supervisor


def working(seconds: int, name: str) -> list[dict[str, Any]]:
    """A plan that works for ``seconds``, then writes a file (so there is a push)."""
    return [
        {"tool": "run_command", "input": {"command": f"sleep {seconds}", "timeout": 600}},
        {"tool": "write_file", "input": {"path": f"{name}.txt", "content": f"{name}\n"}},
        {"tool": "finish", "input": {"summary": f"wrote {name}.txt"}},
    ]


async def stream_info(sup: Supervisor, stream: str) -> Any:
    """The stream's info; asked again when the API did not answer in time (a node that
    just came back makes the cluster move leaders for a moment)."""
    nc = await nats.connect(**parse_nats_url(sup.nats_url).connect_options())
    try:
        for _ in range(4):
            try:
                return await nc.jetstream().stream_info(stream)
            except nats.errors.TimeoutError:
                await asyncio.sleep(0.5)
        return await nc.jetstream().stream_info(stream)
    finally:
        await nc.close()


def assert_pushed_once(remote: Path, records: dict[str, dict[str, Any]]) -> None:
    """Every agent completed and its branch holds exactly its one commit."""
    for agent_id, record in records.items():
        assert record["state"] == "completed", record
        branch = record["pushedBranch"]
        assert branch == f"mosaic/agent-{agent_id}"
        assert git(remote, "rev-list", "--count", f"main..{branch}") == "1"


def test_streams_are_created_with_three_replicas(cluster: Supervisor) -> None:
    assert cluster.nats_cluster is not None
    assert cluster.nats_cluster.size == 3
    info = asyncio.run(stream_info(cluster, subjects.TASKS_STREAM))
    assert info.config.num_replicas == 3
    assert info.cluster.leader
    assert len(info.cluster.replicas) == 2
    assert all(peer.current for peer in info.cluster.replicas)


def test_kill_all_published_on_node_3_as_admin_kills_every_agent_within_a_second(
    cluster: Supervisor, remote_repo: Path, unique: str
) -> None:
    assert cluster.nats_cluster is not None
    node3 = cluster.nats_cluster.nodes[2]
    with admin(cluster) as http:
        agents = [spawn(http, remote_repo, f"ka-{unique}-{n}", sleeper(120)) for n in range(4)]
        wait_state(http, agents, {"running"}, timeout=90)
        deadline = time.monotonic() + 30
        while not all(agent_processes(a) for a in agents):  # each one's command started
            assert time.monotonic() < deadline
            time.sleep(0.05)
        url = cluster.nats_url_for("admin").split(",")[2]
        assert f":{node3.client_port}" in url
        started = time.monotonic()
        answer = raw_publish(url, subjects.KILL_ALL, b'{"reason":"cluster kill-all"}')
        wait_state(http, agents, {"killed"}, timeout=1.0)
        took = time.monotonic() - started
        assert "-ERR" not in answer, answer
        gone = [a for a in agents if agent_processes(a)]
        print(f"\nkill-all from node 3: {len(agents)} agents killed in {took:.3f}s")
        assert not gone, gone
        assert http.post("/agents/resume").json()["held"] is False
    info = asyncio.run(stream_info(cluster, AUDIT_STREAM))  # the kill-all was audited
    assert info.config.num_replicas == 3


def test_nats_node_killed_mid_run_loses_no_task_and_catches_up_when_back(
    cluster: Supervisor, remote_repo: Path, unique: str
) -> None:
    nodes = cluster.nats_cluster
    assert nodes is not None
    # the node gitops is connected to: its answers in flight must still arrive after it
    # moves (a reply is refused by a node that did not deliver the request, unless
    # allowed), and any node may lead TASKS, which is printed
    leader = asyncio.run(stream_info(cluster, subjects.TASKS_STREAM)).cluster.leader
    name = node_of(nodes, "gitops")
    victim = nodes.server(name)
    with admin(cluster) as http:
        agents = [
            spawn(http, remote_repo, f"nk-{unique}-{n}", working(3, f"nk{n}"))
            for n in range(AGENTS)
        ]
        wait_state(http, agents[:1], {"running"}, timeout=60)
        victim.kill()
        killed_at = time.monotonic()
        records = wait_state(http, agents, FINAL, timeout=180)
        role = "gitops' node, TASKS leader" if name == leader else "gitops' node"
        print(
            f"\nNATS node {name} ({role}) SIGKILLed: {AGENTS} agents final "
            f"{time.monotonic() - killed_at:.1f}s later"
        )
        assert_pushed_once(remote_repo, records)
        for agent_id in agents:
            assert final_states(events(http, agent_id)) == ["completed"]
    for log in cluster.logs.glob("*.log"):  # a late reply after a move was once refused
        assert "permissions violation" not in log.read_text(errors="replace"), log
    victim.start_again()
    nodes.wait_current(60, names=[name])
    deadline = time.monotonic() + 30
    while True:
        info = asyncio.run(stream_info(cluster, subjects.TASKS_STREAM))
        peers = {p.name: p for p in info.cluster.replicas}
        back = info.cluster.leader == name or (
            name in peers and peers[name].current and not peers[name].offline
        )
        if back:
            break
        assert time.monotonic() < deadline, info.cluster
        time.sleep(0.2)


def test_valkey_primary_killed_mid_run_promotes_the_replica_and_loses_no_task(
    cluster: Supervisor, remote_repo: Path, unique: str
) -> None:
    group = cluster.valkey_group
    assert group is not None
    host, port = asyncio.run(current_primary(group))
    primary = next(s for s in group.data if s.port == port)
    gap = GapProbe(host, port, group.password)
    with admin(cluster) as http:
        agents = [
            spawn(http, remote_repo, f"vk-{unique}-{n}", working(3, f"vk{n}"))
            for n in range(AGENTS)
        ]
        wait_state(http, agents[:1], {"running"}, timeout=60)
        gap.start()
        time.sleep(0.5)
        primary.kill()
        killed_at = time.monotonic()
        gap.join()
        new = asyncio.run(promoted_primary(group, (host, port), 30))
        promoted_after = time.monotonic() - killed_at
        records = wait_state(http, agents, FINAL, timeout=180)
        assert_pushed_once(remote_repo, records)
    missing = gap.missing_on(*new)
    print(
        f"\nValkey primary SIGKILLed: replica {new[1]} promoted after {promoted_after:.1f}s; "
        f"{len(missing)} of {gap.acked} writes acknowledged by the old primary missing on "
        f"the new one; {AGENTS} agents completed"
    )
    assert gap.acked > 0
    primary.start_again()  # it rejoins as a replica of the new primary
    deadline = time.monotonic() + 30
    client = SyncRedis(host=primary.host, port=primary.port, password=group.password)
    try:
        while client.info("replication").get("role") != "slave":
            assert time.monotonic() < deadline, "the old primary did not rejoin as a replica"
            time.sleep(0.2)
    finally:
        client.close()


def node_of(nodes: NatsCluster, client: str) -> str:
    """The node a client (by its connection name) is connected to, from ``/connz``."""
    for node in nodes.nodes:
        connz = httpx.get(f"http://{node.host}:{node.monitor_port}/connz", timeout=5).json()
        if any(c.get("name") == client for c in connz.get("connections") or []):
            return node.name
    raise AssertionError(f"no node has a connection named {client!r}")


class GapProbe(threading.Thread):
    """Writes numbered keys to the primary as fast as it acknowledges them, until the
    primary dies; ``missing_on`` counts the acknowledged ones the new primary lacks."""

    def __init__(self, host: str, port: int, password: str) -> None:
        super().__init__(daemon=True)
        self.client = SyncRedis(host=host, port=port, password=password, socket_timeout=2)
        self.password = password
        self.acked = 0

    def run(self) -> None:
        try:
            while True:
                self.client.set(f"gap:{self.acked}", "1")
                self.acked += 1
        except (RedisConnectionError, OSError):
            return
        finally:
            self.client.close()

    def missing_on(self, host: str, port: int) -> list[int]:
        client = SyncRedis(host=host, port=port, password=self.password)
        try:
            pipe = client.pipeline(transaction=False)
            for i in range(self.acked):
                pipe.exists(f"gap:{i}")
            return [i for i, found in enumerate(pipe.execute()) if not found]
        finally:
            client.close()


def test_services_got_the_node_list_and_the_sentinels(cluster: Supervisor) -> None:
    env = cluster.service_env("spawner")
    assert len(env["NATS_URL"].split(",")) == 3
    assert env["MOSAIC_STREAM_REPLICAS"] == "3"
    assert cluster.valkey_group is not None
    assert env["VALKEY_SENTINELS"] == cluster.valkey_group.sentinel_addresses
    answer = httpx.get(f"{cluster.gateway_url}/health", timeout=5).json()
    assert answer["status"] == "healthy"
