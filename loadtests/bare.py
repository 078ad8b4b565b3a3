"""The accept-rate floor: a bare HTTP endpoint doing what accepting a task must do at least.

``python -m loadtests.bare --port P --nats URL --valkey URL`` serves ``POST`` on any path
with uvicorn (the gateway's server) and a raw ASGI function (no framework, no auth, no
validation): read the JSON body, one Valkey ``SET`` of it, one JetStream publish of it,
awaited, then ``202``. ``accept_rate`` starts it in its own process, as the gateway runs,
and drives it with the dispatch scenario's load generator (``client.submit_all``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx

from loadtests.client import submit_all

STREAM, SUBJECT = "LOADTEST_BARE", "loadtest.bare"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def make_app(nats_url: str, valkey_url: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app: lifespan opens NATS (a stream for the subject) and Valkey."""
    import nats
    from redis.asyncio import Redis

    held: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    held["nc"] = await nats.connect(nats_url)
                    held["js"] = held["nc"].jetstream()
                    await held["js"].add_stream(name=STREAM, subjects=[SUBJECT])
                    held["valkey"] = Redis.from_url(valkey_url)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    with contextlib.suppress(Exception):
                        await held["js"].delete_stream(STREAM)
                    await held["nc"].close()
                    await held["valkey"].aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        agent_id = uuid.uuid4().hex
        task = json.loads(body or b"{}")
        await held["valkey"].set(f"loadtest:bare:{agent_id}", json.dumps(task))
        await held["js"].publish(SUBJECT, body)
        answer = json.dumps({"agentId": agent_id}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


@contextlib.contextmanager
def serving(port: int, nats_url: str, valkey_url: str) -> Iterator[str]:
    """Run the bare endpoint in its own process until the block ends; yields its URL."""
    argv = [sys.executable, "-m", "loadtests.bare", "--port", str(port)]
    argv += ["--nats", nats_url, "--valkey", valkey_url]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"the bare endpoint exited: {err[-500:]}")
            try:
                httpx.post(url, content=b"{}", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the bare endpoint did not answer in 30 s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def accept_rate(
    nats_url: str, valkey_url: str, bodies: list[dict[str, Any]], parallel: int
) -> dict[str, Any]:
    """Requests per second the bare endpoint accepts from ``parallel`` connections."""
    from mosaic.embedded import free_port

    with serving(free_port(), nats_url, valkey_url) as url:
        limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            started = time.monotonic()
            ids, errors = await submit_all(http, bodies, parallel=parallel)
            seconds = time.monotonic() - started
    return {
        "requests": len(bodies),
        "accepted": len(ids),
        "errors": errors[:5],
        "per_second": round(len(ids) / seconds, 1) if seconds else 0.0,
    }


def main() -> None:
    """Serve until terminated."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m loadtests.bare")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--valkey", required=True)
    args = parser.parse_args()
    app = make_app(args.nats, args.valkey)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
