"""Sandbox containers found by label, for whoever must end them without their spawner.

Every sandbox container made for its agent carries ``mosaic.agent_id`` (and
``mosaic.task_id``, ``mosaic.owner``, ``mosaic.deployment``). A warm one
(``shared.sandbox.warmpool``) was made before its agent existed and labels cannot change:
it carries ``mosaic.warm``, and once an agent claims it its *name* says whose it is
(``mosaic-warm.<agentId>.<sandbox>``; ``agent_of`` reads both). Given a ``deployment``,
the helpers only see containers of that Mosaic system: another system sharing the
daemon keeps its own (see ``shared.deployment``). They are blocking Docker SDK calls:
run them in a thread.
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
LABEL_WARM = "mosaic.warm"
"""The label of a container made ahead of its agent (the warm pool)."""
SLOT_PREFIX = ".warm-"
"""How the empty directory a warm container mounts until it is claimed is named."""
CLAIMED_PREFIX = "mosaic-warm."
"""How a claimed warm container's name starts: ``mosaic-warm.<agentId>.<sandbox id>``
(agent ids never hold ``..``; the last dot ends the id)."""


def warm_name(sandbox_id: str) -> str:
    """A warm container's name until an agent claims it (no ``.``: ``agent_of`` reads none)."""
    return f"mosaic-warm-{sandbox_id[:8]}"


def claimed_name(agent_id: str, sandbox_id: str) -> str:
    """The name a warm container takes when ``agent_id`` claims it."""
    return f"{CLAIMED_PREFIX}{agent_id}.{sandbox_id[:8]}"


def agent_of(info: dict[str, Any]) -> str | None:
    """The agent a listed container belongs to (``containers()`` entry), or None: a warm
    container no agent claimed yet, or not a sandbox."""
    labels = info.get("Labels") or {}
    if labels.get(LABEL_AGENT):
        return str(labels[LABEL_AGENT])
    if LABEL_WARM not in labels:
        return None
    for name in info.get("Names") or ():
        name = str(name).lstrip("/")
        if name.startswith(CLAIMED_PREFIX) and "." in name[len(CLAIMED_PREFIX) :]:
            return name[len(CLAIMED_PREFIX) :].rsplit(".", 1)[0]
    return None


def sandbox_containers(
    client: docker.DockerClient, deployment: str | None = None
) -> list[dict[str, Any]]:
    """Every sandbox container (made for its agent, or warm) of ``deployment``."""
    found: list[dict[str, Any]] = []
    for label in (LABEL_AGENT, LABEL_WARM):
        found += client.api.containers(
            all=True, filters={"label": label_filter(label, deployment=deployment)}
        )
    return found


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
    """Ids of every container (running or not) of ``agent_id`` (and ``deployment``): made
    for it, or warm and claimed by it."""
    found: list[dict[str, Any]] = client.api.containers(
        all=True,
        filters={"label": label_filter(f"{LABEL_AGENT}={agent_id}", deployment=deployment)},
    )
    claimed: list[dict[str, Any]] = client.api.containers(
        all=True,
        filters={
            "label": label_filter(LABEL_WARM, deployment=deployment),
            "name": f"{CLAIMED_PREFIX}{agent_id}.",
        },
    )
    found += [c for c in claimed if agent_of(c) == agent_id]
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
    """Every sandbox container on the daemon (of ``deployment``) that an agent has,
    grouped by agent id (warm containers no agent claimed are left out)."""
    out: dict[str, list[str]] = {}
    for info in sandbox_containers(client, deployment):
        agent_id = agent_of(info)
        if agent_id:
            out.setdefault(agent_id, []).append(str(info["Id"]))
    return out
