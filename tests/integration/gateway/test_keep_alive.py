"""An idle client connection outlives the idle expiry of client pools (httpx: 5 s).

With uvicorn's default (5 s), the server closed idle connections at the moment a pooled
client reused them: under load about 1 spawn in 1000 was answered with a reset
connection (``ReadError``). The gateway's server configuration is served here by uvicorn
itself, and a request is sent on the same connection after 6 idle seconds.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import uvicorn
from fastapi import FastAPI

from mosaic.embedded import free_port
from services.gateway.__main__ import server_config
from services.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REQUEST = b"GET /ping HTTP/1.1\r\nHost: gateway\r\n\r\n"


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(REQUEST)
    await writer.drain()
    with contextlib.suppress(asyncio.IncompleteReadError):
        return await asyncio.wait_for(reader.readuntil(b'"pong"'), 10)
    return b""  # the server closed the connection


async def test_a_connection_idle_past_the_clients_expiry_still_answers() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    port = free_port()
    server = uvicorn.Server(server_config(app, GatewaySettings(gateway_port=port)))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert b"200 OK" in await answer(reader, writer)
        await asyncio.sleep(6)  # idle longer than httpx keeps a pooled connection
        assert b"200 OK" in await answer(reader, writer)
        writer.close()
    finally:
        server.should_exit = True
        await serving
