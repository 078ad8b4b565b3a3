"""The orphan reaper: removes sandbox containers whose agent is no longer live.

A spawner that crashes (or is killed with its sandboxes running) leaves containers
behind; they all carry ``mosaic.agent_id``, so a pass over the daemon finds them and
asks the caller, through ``is_live``, whether their agent is still ``spawning`` or
``running`` in Valkey. Every other one is removed (SIGKILL, no grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import docker
from docker.errors import DockerException
from prometheus_client import Counter, Gauge

from shared.sandbox.containers import LABEL_AGENT, LABEL_OWNER, label_filter, remove_container

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
) -> int:
    """Remove every ``mosaic.agent_id`` container whose agent is not live; return how many.

    ``deployment`` limits the pass to containers labelled ``mosaic.deployment=<id>``: the
    containers of this Mosaic system, whose agents ``is_live`` can know about (another
    system sharing the daemon keeps its own; services always pass it). ``owner`` narrows
    further to ``mosaic.owner=<owner>``. ``is_live`` should be true for ``spawning`` and
    ``running`` agents. An agent whose liveness cannot be checked is left alone.
    """
    label = label_filter(LABEL_AGENT, deployment=deployment)
    if owner is not None:
        label.append(f"{LABEL_OWNER}={owner}")
    found: list[dict[str, Any]] = await asyncio.to_thread(
        docker_client.api.containers, all=True, filters={"label": label}
    )
    SANDBOX_CONTAINERS.set(len(found))
    reaped = 0
    live_cache: dict[str, bool] = {}
    for info in found:
        agent_id = str((info.get("Labels") or {}).get(LABEL_AGENT, ""))
        if agent_id not in live_cache:
            try:
                live_cache[agent_id] = bool(agent_id) and await is_live(agent_id)
            except Exception:
                logger.exception("cannot tell whether agent is live", extra={"agent_id": agent_id})
                live_cache[agent_id] = True
        if live_cache[agent_id]:
            continue
        if await asyncio.to_thread(remove_container, docker_client, str(info["Id"])):
            reaped += 1
            logger.warning(
                "reaped orphan sandbox container %s",
                str(info["Id"])[:12],
                extra={"agent_id": agent_id},
            )
    if reaped:
        ORPHANS_REAPED.inc(reaped)
    return reaped


async def run_reaper(
    docker_client: docker.DockerClient,
    is_live: IsLive,
    *,
    interval_s: float = 60.0,
    owner: str | None = None,
    deployment: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Reap at once, then every ``interval_s`` until ``stop`` is set (or cancelled).

    A failing pass (daemon away for a moment) is logged and counted, never fatal.
    """
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            count = await reap_orphans(docker_client, is_live, owner=owner, deployment=deployment)
        except (DockerException, OSError):
            REAPER_ERRORS.inc()
            logger.exception("orphan reaper pass failed")
        else:
            logger.info("orphan reaper pass: %d container(s) removed", count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
