"""A container health probe: ``python -m shared.healthcheck <service>``.

Exit status 0 when this container's own service answers, 1 otherwise (one line on
stderr says why). Used by the images' ``HEALTHCHECK`` and by compose.

- ``gateway``: ``GET http://127.0.0.1:$GATEWAY_PORT/health`` must say ``healthy``.
- any other service: a request on ``mosaic.health.<service>`` over ``NATS_URL``. Every
  replica of a scaled service answers that subject, so the probe collects the replies
  and passes only when one comes from a process on this host (the ``instance`` field is
  ``<service>-<hostname>-<pid>``, and a container's hostname is its own): a replica that
  is wedged is not reported healthy just because its siblings are fine.
  ``MOSAIC_HEALTH_NATS_URL``, when set, is used instead of ``NATS_URL`` (with NATS auth a
  service's own user may not be allowed to publish probes).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import urllib.request

import nats
from nats.aio.msg import Msg

from shared import subjects
from shared.natsurls import parse_nats_url
from shared.settings import NatsSettings

SERVICES = ("gateway", "spawner", "gitops", "gates", "killswitch")


class HealthCheckError(RuntimeError):
    """The service did not answer, or answered as unhealthy."""


def check_gateway(port: int, timeout: float) -> None:
    """Raise ``HealthCheckError`` unless the gateway on ``port`` says it is healthy."""
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            body = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        raise HealthCheckError(f"GET {url}: {exc}") from exc
    if body.get("status") != "healthy":
        raise HealthCheckError(f"GET {url} answered {body!r}")


def is_own(reply: dict[str, object], service: str, hostname: str) -> bool:
    """Whether a health reply comes from ``service`` running on ``hostname``."""
    instance = reply.get("instance")
    return (
        isinstance(instance, str)
        and instance.startswith(f"{service}-{hostname}-")
        and reply.get("status") == "ok"
    )


async def check_bus(service: str, url: str, timeout: float, hostname: str) -> None:
    """Raise ``HealthCheckError`` unless ``service`` on ``hostname`` answers its probe."""
    try:
        nc = await nats.connect(
            **parse_nats_url(url).connect_options(),
            connect_timeout=timeout,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
    except Exception as exc:  # any connect failure means unhealthy
        raise HealthCheckError(f"cannot reach NATS: {exc}") from exc
    found = asyncio.Event()
    others: list[str] = []

    async def on_reply(msg: Msg) -> None:
        try:
            reply = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(reply, dict) and is_own(reply, service, hostname):
            found.set()
        else:
            others.append(str(reply.get("instance") if isinstance(reply, dict) else reply))

    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=on_reply)
        await nc.publish(subjects.health(service), b"", reply=inbox)
        await nc.flush(timeout=max(1, round(timeout)))
        try:
            await asyncio.wait_for(found.wait(), timeout)
        except TimeoutError:
            seen = ", ".join(others) or "none"
            raise HealthCheckError(
                f"no answer from {service} on host {hostname} within {timeout}s "
                f"(other replies: {seen})"
            ) from None
        await sub.unsubscribe()
    finally:
        await nc.close()


def probe(service: str, timeout: float = 3.0) -> None:
    """Run the probe for ``service``; raise ``HealthCheckError`` when it fails."""
    if service not in SERVICES:
        raise HealthCheckError(f"unknown service {service!r} (one of {', '.join(SERVICES)})")
    if service == "gateway":
        check_gateway(int(os.environ.get("GATEWAY_PORT", "3001")), timeout)
        return
    url = os.environ.get("MOSAIC_HEALTH_NATS_URL") or NatsSettings().nats_url
    asyncio.run(check_bus(service, url, timeout, socket.gethostname()))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m shared.healthcheck <service> [timeout_s]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2:
        print("usage: python -m shared.healthcheck <service> [timeout_s]", file=sys.stderr)
        return 2
    try:
        probe(args[0], float(args[1]) if len(args) == 2 else 3.0)
    except (HealthCheckError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
