"""The killswitch's reaper: leftovers of agents that are over, found on an interval.

A pass removes sandbox containers of agents that are final (or unknown), SIGKILLs and
forgets process groups still recorded for final agents, and asks gitops to remove
worktrees that final agents still hold (after ``reap_min_age_s``, so a spawner's own
cleanup goes first), each host's killswitch only its own host's. Agents stuck
``assigned``/``executing`` because their spawner died are not touched: JetStream
redelivers their task after the ack wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from docker.errors import DockerException
from prometheus_client import Counter

from services.killswitch.logic import Killswitch
from shared.lifecycle import AGENT_FINAL
from shared.messages.base import utcnow
from shared.sandbox.containers import remove_container
from shared.sandbox.procgroups import kill_groups

log = logging.getLogger(__name__)

REAPED = Counter(
    "mosaic_killswitch_reaped_total", "Leftovers of final agents removed by the reaper", ["what"]
)


@dataclass
class ReapReport:
    """What one pass removed."""

    containers: int = 0
    worktrees: int = 0
    process_groups: int = 0


async def reap_once(ks: Killswitch) -> ReapReport:
    """One pass over containers, recorded process groups and worktrees."""
    report = ReapReport()
    store = ks.store
    by_agent = await ks.stopper.containers()
    client = await ks.stopper.client()
    for agent_id, ids in by_agent.items():
        record = await store.get_agent(agent_id)
        if record is not None and (record.state not in AGENT_FINAL or not ks.runs_here(record)):
            continue
        for container_id in ids:
            if client is not None and await asyncio.to_thread(
                remove_container, client, container_id
            ):
                report.containers += 1
                log.warning("reaped container %s", container_id[:12], extra={"agent_id": agent_id})
    async for agent_id in ks.stopper.groups.agent_ids():
        record = await store.get_agent(agent_id)
        if record is not None and record.state not in AGENT_FINAL:
            continue
        killed = await asyncio.to_thread(kill_groups, await ks.stopper.groups.members(agent_id))
        report.process_groups += len(killed)
        await ks.stopper.groups.clear(agent_id)
    now = utcnow()
    for record in await ks.records(await store.list_agent_ids(0, 10_000_000)):
        if record.state not in AGENT_FINAL or not record.worktree or not ks.runs_here(record):
            continue  # another host's worktree is that host's killswitch's to reap
        ended = record.completed_at or record.created_at
        if (now - ended).total_seconds() < ks.settings.reap_min_age_s:
            continue
        await ks.cleanup(record)
        after = await store.get_agent(record.agent_id)
        if after is not None and after.worktree is None:
            report.worktrees += 1
    for what in ("containers", "worktrees", "process_groups"):
        if getattr(report, what):
            REAPED.labels(what).inc(getattr(report, what))
    return report


async def run_reaper(ks: Killswitch, stop: asyncio.Event) -> None:
    """Reap at once, then every ``reap_interval_s``; a failing pass is logged, not fatal."""
    while not stop.is_set():
        try:
            report = await reap_once(ks)
        except (DockerException, OSError, ConnectionError):
            log.exception("reaper pass failed")
        except Exception:
            log.exception("reaper pass failed unexpectedly")
        else:
            if report.containers or report.worktrees or report.process_groups:
                log.warning("reaper: %s", report)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=ks.settings.reap_interval_s)
