"""Connections to NATS and Valkey, and typed request/reply over the bus."""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from faststream.nats import NatsBroker, NatsSecurity, NatsToken, NatsUserPassword
from nats.aio.client import Client
from opentelemetry.trace import SpanKind
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared import subjects, tracing
from shared.errors import BusUnavailableError
from shared.messages.base import Message
from shared.natsurls import parse_nats_url
from shared.replies import refuse_malformed
from shared.settings import NatsSettings, ValkeySettings
from shared.valkeydriver import DRIVER_INFO
from shared.valkeysentinel import make_sentinel_valkey

ReplyT = TypeVar("ReplyT", bound=Message)

log = logging.getLogger(__name__)


def make_broker(settings: NatsSettings, name: str) -> NatsBroker:
    """A FastStream NATS broker over every node ``NATS_URL`` lists (``shared.natsurls``)
    that reconnects forever, to whichever node answers (services outlive NATS restarts
    and the loss of a cluster node),
    answers a request it cannot read with an error naming the fields (``replies``), and
    publishes the process's finished spans of tasks (``shared.spanbus``)."""
    nodes = parse_nats_url(settings.nats_url)
    security: NatsSecurity | None = None
    if nodes.user is not None and nodes.password is None:
        security = NatsToken(nodes.user)
    elif nodes.user is not None and nodes.password is not None:
        security = NatsUserPassword(nodes.user, nodes.password)
    broker = NatsBroker(
        list(nodes.servers),
        security=security,
        name=name,
        connect_timeout=int(settings.nats_connect_timeout),
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        allow_reconnect=True,
        logger=logging.getLogger(f"faststream.{name}"),
        log_level=logging.DEBUG,
        middlewares=[refuse_malformed()],
    )
    tracing.publish_spans_with(broker)
    return broker


_FLUSHES: set[asyncio.Task[None]] = set()
"""Flushes still waiting for their PONG after their caller stopped waiting."""


async def flush(nc: Client, timeout: float) -> None:
    """``nc.flush()`` that its caller may stop waiting for (time-out, cancellation).

    nats-py answers a PONG by resolving the oldest ping's future; when the caller of
    ``flush`` was cancelled, that future is cancelled too, and the late PONG raises
    ``InvalidStateError`` inside the client's read loop, which then dies: the connection
    stays "connected" and no message or reply reaches the process again (a spawner whose
    lease was stopped mid-flush wedged this way). So the flush runs in its own task that
    nobody cancels, and the caller waits for it at most ``timeout``.
    """
    task = asyncio.ensure_future(nc.flush(timeout=_FLUSH_LIMIT_S))
    _FLUSHES.add(task)
    task.add_done_callback(_FLUSHES.discard)
    task.add_done_callback(_consume)
    await asyncio.wait_for(asyncio.shield(task), timeout)


FLUSH_WAIT_S = 10.0
"""How long a kill order's publisher waits for the server to confirm it (nats-py's
default flush time-out)."""

_FLUSH_LIMIT_S = 60
"""nats-py's own wait for the PONG: long, so its time-out (which cancels the ping's
future too) is reached only by a connection that is gone anyway."""


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a flush that failed after its caller left is not news


def make_valkey(settings: ValkeySettings) -> Redis:
    """A Valkey client that retries dropped connections with backoff; with
    ``VALKEY_SENTINELS``, one that asks the sentinels for the primary (``make_sentinel_valkey``)."""
    if settings.valkey_sentinels:
        return make_sentinel_valkey(settings)
    pool = BlockingConnectionPool.from_url(
        settings.valkey_url,
        max_connections=settings.valkey_max_connections,
        timeout=settings.valkey_pool_timeout_s,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=10,
        socket_connect_timeout=3,
        driver_info=DRIVER_INFO,
    )
    return Redis.from_pool(pool)  # the client owns the pool: closing it closes them all


def _destination(subject: str) -> dict[str, str]:
    attributes = {"messaging.system": "nats", "messaging.destination.name": subject}
    host = subjects.subject_host(subject)
    if host is not None:
        attributes["mosaic.host"] = host
    return attributes


async def request(
    broker: NatsBroker, subject: str, message: Message, reply_type: type[ReplyT], timeout: float
) -> ReplyT:
    """Send ``message`` and parse the reply as ``reply_type``.

    The request is a client span of the current trace, whose context goes along in the
    headers, so the responder's span is its child. Raises ``BusUnavailableError``
    (retryable) when nobody answers in time.
    """
    with tracing.span(
        f"request {subjects.span_name(subject)}",
        kind=SpanKind.CLIENT,
        agent_id=getattr(message, "agent_id", None),
        task_id=getattr(message, "task_id", None),
        attributes=_destination(subject),
    ):
        try:
            reply = await broker.request(
                message.to_bytes(), subject, headers=tracing.inject(), timeout=timeout
            )
        except TimeoutError as exc:
            raise BusUnavailableError(f"no answer on {subject} within {timeout}s") from exc
        except Exception as exc:  # nats raises NoRespondersError and friends
            if type(exc).__name__ in {"NoRespondersError", "TimeoutError", "ConnectionClosedError"}:
                raise BusUnavailableError(
                    f"no responder on {subject}: {type(exc).__name__}"
                ) from exc
            raise
        return reply_type.from_bytes(reply.body)
