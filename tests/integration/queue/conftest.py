"""Queue tests get their own nats-server: they count every message on the TASKS stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from mosaic.embedded import ServerProcess, start_nats


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_nats(tmp_path / "nats")
    yield server
    server.stop()


@pytest.fixture
async def nc(own_nats: ServerProcess) -> AsyncIterator[Client]:
    client = await nats.connect(f"nats://127.0.0.1:{own_nats.port}")
    yield client
    await client.close()
