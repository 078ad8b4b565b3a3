"""The embedded servers really run: NATS with JetStream, Valkey answering; a port taken
before a server binds it is not the end of a run, and a server dying at start says why."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from redis.asyncio import Redis

from mosaic import embedded
from mosaic.embedded import EmbeddedServerError, ServerProcess, start_nats, start_valkey

pytestmark = pytest.mark.integration


async def test_nats_jetstream_answers(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    info = await nc.jetstream().account_info()
    assert info.limits is not None
    await nc.close()


async def test_valkey_answers(redis: Redis) -> None:
    assert await redis.ping()


def _held_port() -> tuple[socket.socket, int]:
    """A loopback port bound by a socket that does not listen: the way an outgoing
    connection holds one, so a server cannot bind it and a probe cannot connect."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    return held, int(held.getsockname()[1])


def test_nats_binds_a_port_of_its_own_choosing_and_keeps_it_on_restart(tmp_path: Path) -> None:
    server = start_nats(tmp_path / "nats")
    try:
        assert "--ports_file_dir" not in server.args
        assert server.args[server.args.index("-p") + 1] == str(server.port)
        server.restart()
        with socket.create_connection(("127.0.0.1", server.port), 2):
            pass
    finally:
        server.stop()


@pytest.mark.parametrize("start", [start_nats, start_valkey])
def test_a_server_that_cannot_bind_is_reported_with_its_own_words(
    tmp_path: Path, start: Callable[..., ServerProcess]
) -> None:
    held, port = _held_port()
    with held, pytest.raises(EmbeddedServerError, match=r"(?i)address already in use") as error:
        start(tmp_path / "server", port=port)
    assert "exited with code 1 at start" in str(error.value)


def test_valkey_picks_another_port_when_the_one_it_picked_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, taken = _held_port()
    picks = [taken]
    real_free_port = embedded.free_port

    def first_pick_taken() -> int:
        return picks.pop() if picks else real_free_port()

    monkeypatch.setattr(embedded, "free_port", first_pick_taken)
    with held:
        server = start_valkey(tmp_path / "valkey")
    try:
        assert server.port != taken
        assert "Address already in use" in (tmp_path / "valkey" / "valkey-server.log").read_text()
    finally:
        server.stop()


def test_ports_handed_out_are_outside_the_range_outgoing_connections_draw_from() -> None:
    low, _high = embedded._ephemeral_range()
    ports = {embedded.free_port() for _ in range(50)}
    assert all(port < low for port in ports), sorted(ports)
    assert len(ports) > 40  # drawn at random, not the same few
