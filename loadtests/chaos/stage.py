"""One scenario's system: the supervisor, the remote, HTTP clients, and the fault verbs.

The faults are the real thing: SIGKILL of a service process (restarted at once, as a
process manager would), a restart of nats-server or valkey-server on the same data.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from loadtests.target import Target
from mosaic.supervisor import Supervisor

CHAOS_ENV = {
    "TASK_ACK_WAIT_S": "2",  # a dead spawner's tasks come back after 2 s, not 30
    "GITOPS_TIMEOUT_S": "20",  # the spawner's wait for a gitops answer (gitops killed)
    "GATES_TIMEOUT_S": "30",  # the spawner's wait for a gates answer (gates killed)
    "RETRY_BASE_DELAY_S": "0.5",
    "RETRY_MAX_DELAY_S": "4",
    "REAP_INTERVAL_S": "5",  # the killswitch's reaper looks for leftovers every 5 s
    "REAP_MIN_AGE_S": "5",
}
"""Settings of the chaos systems: shorter waits than production, so that a run of many
faults ends in minutes; the paths taken are the same."""


@dataclass
class Stage:
    """The system a scenario runs on."""

    target: Target
    supervisor: Supervisor
    home: Path
    remote: Path
    http: httpx.AsyncClient
    admin: httpx.AsyncClient
    _ended: int = 0

    def kill(self, service: str) -> None:
        """SIGKILL one service process (no hand-back, no cleanup) and start it again."""
        self.supervisor.stop_service(service, signal.SIGKILL)
        self.supervisor.start_service(service)

    def instance(self, service: str) -> str:
        """The instance name the running process of ``service`` records (``shared.service``)."""
        pid = self.supervisor.procs[service].pid
        return f"{service.split('-', 1)[0]}-{socket.gethostname()}-{pid}"

    def pids(self) -> set[int]:
        """The processes of the system itself: services and servers, as they are now."""
        found = {p.pid for p in self.supervisor.procs.values() if p.poll() is None}
        found |= {s.proc.pid for s in self.supervisor.servers.values()}
        return found

    async def running_on(self, service: str) -> list[dict[str, Any]]:
        """Agents running on the live process of ``service`` (stale records of a killed
        spawner still say ``running`` until their task is taken again)."""
        try:
            answer = await self.http.get("/agents", params={"state": "running", "limit": 500})
            agents: list[dict[str, Any]] = answer.json()["agents"]
        except (httpx.HTTPError, ValueError, KeyError):
            return []
        mine = self.instance(service)
        return [a for a in agents if a.get("spawner") == mine]

    async def wait_running_on(self, service: str, least: int, timeout: float) -> int:
        """Wait until ``least`` agents run on ``service``; how many do (0 on time-out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = len(await self.running_on(service))
            if count >= least:
                return count
            await asyncio.sleep(0.1)
        return 0

    async def ended(self) -> int | None:
        """Tasks final so far (``/queue``); None while the system does not answer."""
        try:
            answer = await self.http.get("/queue")
            tasks = answer.json()["tasksByState"]
            return int(tasks.get("completed", 0)) + int(tasks.get("failed", 0))
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def wait_progress(self, timeout: float) -> bool:
        """Wait until one more task ends than when last asked: faults are paced by the
        system's progress, so that they hit work, not a system that only restarts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = await self.ended()
            if now is not None and now > self._ended:
                self._ended = now
                return True
            await asyncio.sleep(0.2)
        return False

    async def process_groups(self) -> int:
        """Process groups still recorded in Valkey (``shared.sandbox.procgroups``)."""
        assert self.target.valkey_url
        client = Redis.from_url(self.target.valkey_url)
        try:
            total = 0
            async for key in client.scan_iter(match="mosaic:agent:*:pgids", count=500):
                total += int(await client.scard(key))
            return total
        finally:
            await client.aclose()


def progress(text: str) -> None:
    """One overwritten progress line on stderr."""
    sys.stderr.write(f"\r  {text:<100}")
    sys.stderr.flush()
