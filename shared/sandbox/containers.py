"""Sandbox containers found by label, for whoever must end them without their spawner.

Every sandbox container carries ``mosaic.agent_id`` (and ``mosaic.task_id``,
``mosaic.owner``, ``mosaic.deployment``). Given a ``deployment``, the helpers only see
containers of that Mosaic system: another system sharing the daemon keeps its own
(see ``shared.deployment``). They are blocking Docker SDK calls: run them in a thread.
"""

from __future__ import annotations

from typing import Any

import docker
from docker.errors import APIError, NotFound

LABEL_AGENT = "mosaic.agent_id"
"""The label naming the agent a sandbox container belongs to."""
LABEL_TASK = "mosaic.task_id"
"""The label naming the task a sandbox container belongs to."""
LABEL_OWNER = "mosaic.owner"
"""The label naming the spawner instance that made the container."""
LABEL_DEPLOYMENT = "mosaic.deployment"
"""The label naming the Mosaic system (its Valkey) the container's agent belongs to."""


def label_filter(*labels: str, deployment: str | None = None) -> list[str]:
    """A Docker ``label`` filter for ``labels``, narrowed to ``deployment`` when given."""
    found = list(labels)
    if deployment is not None:
        found.append(f"{LABEL_DEPLOYMENT}={deployment}")
    return found


def remove_container(client: docker.DockerClient, container_id: str) -> bool:
    """SIGKILL and remove one container (with its anonymous volumes); False if gone."""
    try:
        client.api.remove_container(container_id, force=True, v=True)
    except NotFound:
        return False
    except APIError as exc:
        if exc.status_code == 409:  # removal already in progress elsewhere
            return False
        raise
    return True


def agent_containers(
    client: docker.DockerClient, agent_id: str, deployment: str | None = None
) -> list[str]:
    """Ids of every container (running or not) labelled with ``agent_id`` (and ``deployment``)."""
    found: list[dict[str, Any]] = client.api.containers(
        all=True,
        filters={"label": label_filter(f"{LABEL_AGENT}={agent_id}", deployment=deployment)},
    )
    return [str(c["Id"]) for c in found]


def remove_agent_containers(
    client: docker.DockerClient, agent_id: str, deployment: str | None = None
) -> int:
    """Remove every container of ``agent_id`` at once (no grace); how many were removed."""
    return sum(
        remove_container(client, cid) for cid in agent_containers(client, agent_id, deployment)
    )


def containers_by_agent(
    client: docker.DockerClient, deployment: str | None = None
) -> dict[str, list[str]]:
    """Every sandbox container on the daemon (of ``deployment``), grouped by agent id."""
    found: list[dict[str, Any]] = client.api.containers(
        all=True, filters={"label": label_filter(LABEL_AGENT, deployment=deployment)}
    )
    out: dict[str, list[str]] = {}
    for info in found:
        agent_id = str((info.get("Labels") or {}).get(LABEL_AGENT, ""))
        if agent_id:
            out.setdefault(agent_id, []).append(str(info["Id"]))
    return out
