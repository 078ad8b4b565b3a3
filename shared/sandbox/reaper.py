"""The orphan reaper: removes sandbox containers whose agent is no longer live.

A spawner that crashes (or is killed with its sandboxes running) leaves containers
behind; each names its agent (``shared.sandbox.containers.agent_of``), so a pass over
the daemon finds them and asks the caller, through ``is_live``, whether their agent is
still ``spawning`` or ``running`` in Valkey. Every other one is removed (SIGKILL, no
grace). A warm container no agent claimed belongs to a pool, which replaces its own
before ``warm_max_age_s``; one older than twice that lost its pool and goes too, with
its empty slot directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException
from prometheus_client import Counter, Gauge

from shared.sandbox.containers import (
    LABEL_OWNER,
    SLOT_PREFIX,
    agent_of,
    remove_container,
    sandbox_containers,
)

logger = logging.getLogger(__name__)

ORPHANS_REAPED = Counter(
    "mosaic_sandbox_orphans_reaped_total", "Sandbox containers removed because their agent was gone"
)
SANDBOX_CONTAINERS = Gauge(
    "mosaic_sandbox_containers",
    "Sandbox containers seen by the last reaper pass (live and orphaned)",
)
REAPER_ERRORS = Counter("mosaic_sandbox_reaper_errors_total", "Reaper passes that failed")

IsLive = Callable[[str], Awaitable[bool]]


async def reap_orphans(
    docker_client: docker.DockerClient,
    is_live: IsLive,
    *,
    owner: str | None = None,
    deployment: str | None = None,
    warm_max_age_s: float = 300.0,
) -> int:
    """Remove every sandbox container whose agent is not live; return how many.

    ``deployment`` limits the pass to containers labelled ``mosaic.deployment=<id>``: the
    containers of this Mosaic system, whose agents ``is_live`` can know about (another
    system sharing the daemon keeps its own; services always pass it). ``owner`` narrows
    further to ``mosaic.owner=<owner>``. ``is_live`` should be true for ``spawning`` and
    ``running`` agents. An agent whose liveness cannot be checked is left alone.
    """
    found = await asyncio.to_thread(sandbox_containers, docker_client, deployment)
    if owner is not None:
        found = [c for c in found if (c.get("Labels") or {}).get(LABEL_OWNER) == owner]
    SANDBOX_CONTAINERS.set(len(found))
    reaped = 0
    live_cache: dict[str, bool] = {}
    for info in found:
        agent_id = agent_of(info)
        if agent_id is None:
            if time.time() - float(info.get("Created", 0)) < 2 * warm_max_age_s:
                continue  # a pool's (it replaces its own before then)
        elif agent_id not in live_cache:
            try:
                live_cache[agent_id] = await is_live(agent_id)
            except Exception:
                logger.exception("cannot tell whether agent is live", extra={"agent_id": agent_id})
                live_cache[agent_id] = True
        if agent_id is not None and live_cache[agent_id]:
            continue
        if await asyncio.to_thread(remove_container, docker_client, str(info["Id"])):
            reaped += 1
            if agent_id is None:
                _remove_empty_slot(info)
            logger.warning(
                "reaped orphan sandbox container %s",
                str(info["Id"])[:12],
                extra={"agent_id": agent_id or "-"},
            )
    if reaped:
        ORPHANS_REAPED.inc(reaped)
    return reaped


def _remove_empty_slot(info: dict[str, Any]) -> None:
    """The empty slot directory a lost pool's warm container mounted, if still there."""
    for mount in info.get("Mounts") or ():
        source = Path(str(mount.get("Source", "")))
        if source.name.startswith(SLOT_PREFIX):
            with contextlib.suppress(OSError):  # not empty, or gone: leave it
                source.rmdir()


async def run_reaper(
    docker_client: docker.DockerClient,
    is_live: IsLive,
    *,
    interval_s: float = 60.0,
    owner: str | None = None,
    deployment: str | None = None,
    warm_max_age_s: float = 300.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Reap at once, then every ``interval_s`` until ``stop`` is set (or cancelled).

    A failing pass (daemon away for a moment) is logged and counted, never fatal.
    """
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            count = await reap_orphans(
                docker_client,
                is_live,
                owner=owner,
                deployment=deployment,
                warm_max_age_s=warm_max_age_s,
            )
        except (DockerException, OSError):
            REAPER_ERRORS.inc()
            logger.exception("orphan reaper pass failed")
        else:
            logger.info("orphan reaper pass: %d container(s) removed", count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
