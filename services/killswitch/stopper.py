"""Ending an agent's sandbox without its spawner: containers by label, process groups by record.

The Docker SDK is blocking, so every call runs in a thread. A daemon that does not
answer is noted and tried again on the next kill; process groups are only reachable
on this host (see ``shared.sandbox.procgroups``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import docker
from docker.errors import DockerException

from shared.sandbox.containers import containers_by_agent, remove_agent_containers
from shared.sandbox.procgroups import ProcessGroupRegistry, kill_groups

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stopped:
    """What ``Stopper.stop`` ended for one agent."""

    containers: int = 0
    process_groups: int = 0


class Stopper:
    """Stops an agent's containers and recorded process groups at once (SIGKILL)."""

    def __init__(
        self,
        groups: ProcessGroupRegistry,
        *,
        use_docker: bool,
        docker_timeout_s: float,
        deployment: str | None = None,
    ) -> None:
        self.groups = groups
        self.deployment = deployment
        """Only containers of this system (``shared.deployment``); the app always sets it."""
        self._use_docker = use_docker
        self._timeout = docker_timeout_s
        self._client: docker.DockerClient | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> docker.DockerClient | None:
        """A client of a daemon that answered a ping, or None (tried again next time)."""
        if not self._use_docker:
            return None
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.to_thread(self._connect)
                except (DockerException, OSError) as exc:
                    log.info("no Docker daemon (%s): only process groups can be stopped", exc)
                    return None
            return self._client

    def _connect(self) -> docker.DockerClient:
        client = docker.from_env(timeout=int(self._timeout))
        client.ping()
        return client

    async def stop(self, agent_id: str) -> Stopped:
        """SIGKILL and remove the agent's containers; SIGKILL its process groups here."""
        containers = 0
        groups = await asyncio.to_thread(kill_groups, await self.groups.members(agent_id))
        client = await self.client()
        if client is not None:
            try:
                containers = await asyncio.to_thread(
                    remove_agent_containers, client, agent_id, self.deployment
                )
            except (DockerException, OSError):
                log.exception("cannot remove containers", extra={"agent_id": agent_id})
        return Stopped(containers=containers, process_groups=len(groups))

    async def containers(self) -> dict[str, list[str]]:
        """Every sandbox container of this system by agent id (empty without a daemon)."""
        client = await self.client()
        if client is None:
            return {}
        return await asyncio.to_thread(containers_by_agent, client, self.deployment)

    def close(self) -> None:
        """Close the Docker client, if one was opened."""
        if self._client is not None:
            self._client.close()
            self._client = None
