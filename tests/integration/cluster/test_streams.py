"""Stream replicas from the cluster's size (``shared.streams``) on real nats-server nodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, StreamConfig

from mosaic.embedded import ServerProcess
from mosaic.natscluster import NatsCluster, start_nats_cluster
from shared import queue
from shared.natsurls import parse_nats_url
from shared.streams import StreamError, StreamSettings, ensure_stream, wanted_replicas

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    cluster = start_nats_cluster(tmp_path_factory.mktemp("three"), 3, route_password="r")
    yield cluster
    cluster.stop()


@pytest.fixture
async def nc(three: NatsCluster) -> AsyncIterator[Client]:
    client = await nats.connect(**parse_nats_url(three.url).connect_options())
    yield client
    await client.close()


def config(name: str) -> StreamConfig:
    return StreamConfig(name=name, subjects=[f"{name.lower()}.>"])


async def test_auto_counts_the_nodes_a_url_of_one_node_leads_to(three: NatsCluster) -> None:
    client = await nats.connect(three.nodes[1].client_url)  # one node named, two announced
    try:
        assert wanted_replicas(client) == 3
        assert wanted_replicas(client, StreamSettings(mosaic_stream_replicas="2")) == 2
    finally:
        await client.close()


async def test_auto_on_a_single_server_is_one(nats_server: ServerProcess) -> None:
    client = await nats.connect(f"nats://127.0.0.1:{nats_server.port}")
    try:
        assert wanted_replicas(client) == 1
    finally:
        await client.close()


async def test_the_task_stream_is_created_with_three_replicas(nc: Client, unique: str) -> None:
    js = nc.jetstream()
    await queue.ensure_stream(js)  # the real TASKS stream (the test cluster is fresh)
    info = await js.stream_info("TASKS")
    assert info.config.num_replicas == 3
    assert info.cluster is not None
    assert len(info.cluster.replicas or []) == 2


async def test_an_r1_stream_is_raised_to_three_and_keeps_its_messages(
    nc: Client, unique: str
) -> None:
    js = nc.jetstream()
    name = f"GROW{unique}".upper()
    await ensure_stream(js, config(name), StreamSettings(mosaic_stream_replicas="1"))
    assert (await js.stream_info(name)).config.num_replicas == 1
    for i in range(5):
        await js.publish(f"{name.lower()}.x", str(i).encode(), stream=name)
    await js.add_consumer(name, ConsumerConfig(durable_name="band"))  # inherits replicas
    await ensure_stream(js, config(name))  # auto on three nodes: the cluster grew
    info = await js.stream_info(name)
    assert info.config.num_replicas == 3
    assert info.state.messages == 5
    deadline = time.monotonic() + 20
    while True:  # its durable consumer follows the stream to three replicas
        consumer = await js.consumer_info(name, "band")
        if consumer.cluster is not None and len(consumer.cluster.replicas or []) == 2:
            break
        assert time.monotonic() < deadline, consumer.cluster
        await asyncio.sleep(0.2)
    assert consumer.num_pending == 5
    await ensure_stream(js, config(name), StreamSettings(mosaic_stream_replicas="1"))
    assert (await js.stream_info(name)).config.num_replicas == 3  # never shrunk


async def test_more_replicas_than_nodes_fails_naming_the_setting(
    tmp_path: Path, unique: str
) -> None:
    two = start_nats_cluster(tmp_path, 2, route_password="r")
    try:
        client = await nats.connect(**parse_nats_url(two.url).connect_options())
        try:
            js = client.jetstream()
            wanted = StreamSettings(mosaic_stream_replicas="3")
            with pytest.raises(StreamError, match="MOSAIC_STREAM_REPLICAS"):
                await ensure_stream(js, config(f"NOPE{unique}".upper()), wanted)
            cfg = config(f"OK{unique}".upper())
            await ensure_stream(js, cfg)  # auto: two nodes, two replicas
            assert (await js.stream_info(cfg.name or "")).config.num_replicas == 2
        finally:
            await client.close()
    finally:
        two.stop()
