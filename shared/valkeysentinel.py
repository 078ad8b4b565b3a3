"""A Valkey client that follows the primary through Sentinel failovers.

With ``VALKEY_SENTINELS`` set, services reach Valkey through the sentinels, which name
the current primary. When the primary dies (connection refused, reset) or has been
demoted (it answers ``READONLY``, which redis-py turns into a dropped connection), the
command is retried with backoff; each retry asks the sentinels again, so it lands on
the promoted replica once the sentinels have promoted one.

Retrying a write is safe for the store: ``shared.store``'s transitions are idempotent
per write id, so a transition that reached the old primary and its replica is not
applied twice, and one the old primary acknowledged but never sent to the replica
(asynchronous replication: docs/deploy.md) is applied again by whoever retries it.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.settings import ValkeySettings
from shared.valkeydriver import DRIVER_INFO

SENTINEL_RETRIES = 80
"""Attempts of one command through a failover: with backoff capped at 1 s, about 75 s,
more than a failover takes, so a command that hit the switch is sent again to the new
primary. A failover is the sentinels' down-after time plus an election, a few seconds;
but a sentinel whose timer fired late (a saturated machine) enters TILT mode and acts
on nothing for 30 s, and CI saw a write give up after the 35 s this was before."""


class FailoverConnection(SentinelManagedConnection):
    """A connection that asks the sentinels for the primary every time it connects.

    redis-py's asyncio ``SentinelManagedConnection`` looks the primary up only in
    ``connect()``, but a command on a dropped connection reconnects through
    ``connect_check_health()``, to the address it had: the dead primary, retried until
    the retries run out while the sentinels already name the new one. Here every
    (re)connection looks the primary up first, and a failed connect is not retried in
    place (the command's own retry asks the sentinels again)."""

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        """Connect to the primary the sentinels name now (see the class docstring)."""
        if not self.is_connected and self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health, retry_socket_connect=False)


def make_sentinel_valkey(settings: ValkeySettings) -> Redis:
    """A client on the primary that the sentinels of ``VALKEY_SENTINELS`` name; the
    password (for the data servers and the sentinels) and db come from ``VALKEY_URL``."""
    url = urlsplit(settings.valkey_url)
    password = unquote(url.password) if url.password else None
    username = unquote(url.username) if url.username else None
    db = int(url.path.lstrip("/") or 0)
    sentinel = Sentinel(
        settings.sentinel_addresses(),
        sentinel_kwargs={"password": password, "socket_connect_timeout": 1, "socket_timeout": 2},
        password=password,
        username=username,
        db=db,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=SENTINEL_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=10,
        socket_connect_timeout=3,
        driver_info=DRIVER_INFO,
    )
    client: Redis = sentinel.master_for(
        settings.valkey_sentinel_master, redis_class=Redis, connection_class=FailoverConnection
    )
    return client
