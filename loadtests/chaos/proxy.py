"""A TCP proxy that can be cut: one process's way to a server, partitioned on demand.

Cutting a network namespace or SIGSTOPping a shared server would cut every service;
pointing one spawner at this proxy instead of nats-server lets the suite partition that
spawner alone. ``cut`` closes every relayed connection and refuses new ones (the peer
sees resets, as behind a dead link that the kernel reports); ``heal`` accepts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from mosaic.embedded import free_port


class CuttableProxy:
    """Relays ``127.0.0.1:<port>`` to ``127.0.0.1:<upstream>`` on a thread of its own.

    Its own event loop and thread, so a scenario blocked in a synchronous call (a server
    restart) does not stall the relayed traffic.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.cut_now = False
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="chaos-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> CuttableProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the chaos proxy did not listen on {self.port}")
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones until ``heal``."""
        done = threading.Event()

        def act() -> None:
            self.cut_now = True
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
            done.set()

        self._loop.call_soon_threadsafe(act)
        done.wait(5)

    def heal(self) -> None:
        """Relay again."""
        self.cut_now = False

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(start())
        try:
            self._loop.run_forever()
        finally:
            for writer in list(self._writers):
                writer.transport.abort()
            if self._server is not None:
                self._server.close()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        with contextlib.suppress(asyncio.CancelledError):  # the proxy is closing
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.cut_now:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()
