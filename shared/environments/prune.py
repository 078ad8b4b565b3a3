"""Removing environment images nobody needs any more.

Policy (``MOSAIC_ENV_KEEP_PER_REPOSITORY``, ``MOSAIC_ENV_PRUNE_UNUSED_DAYS``): per
repository, keep the most recently used images up to the count; remove the rest, and
any image unused for longer than the days. "Used" is the last time an agent or a build
asked for it (a Valkey hash, so every spawner's use counts), else its build time. An
image a container still runs from is not removed (Docker refuses without force; we
never force), and the next agent that needs a removed image builds it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import docker
from docker.errors import APIError, DockerException

from shared.environments.key import LABEL_CREATED, LABEL_KEY, LABEL_REPOSITORY
from shared.environments.settings import EnvironmentSettings

log = logging.getLogger(__name__)

DAY_S = 86_400.0


@dataclass(frozen=True)
class EnvironmentImage:
    """One environment image as pruning sees it."""

    tag: str
    repository: str
    last_used: float
    """Unix time of its last use (or of its build)."""


def select_prunable(
    images: Iterable[EnvironmentImage], now: float, settings: EnvironmentSettings
) -> list[str]:
    """The tags the policy removes, oldest use first."""
    by_repository: dict[str, list[EnvironmentImage]] = {}
    for image in images:
        by_repository.setdefault(image.repository, []).append(image)
    doomed: list[EnvironmentImage] = []
    max_age = settings.prune_unused_days * DAY_S
    for group in by_repository.values():
        group.sort(key=lambda i: i.last_used, reverse=True)
        for rank, image in enumerate(group):
            if rank >= settings.keep_per_repository or now - image.last_used > max_age:
                doomed.append(image)
    return [i.tag for i in sorted(doomed, key=lambda i: i.last_used)]


def _created(labels: Mapping[str, str], fallback: float) -> float:
    try:
        return datetime.fromisoformat(labels[LABEL_CREATED]).timestamp()
    except (KeyError, ValueError):
        return fallback


def list_images(client: docker.DockerClient, used: Mapping[str, float]) -> list[EnvironmentImage]:
    """Every tagged environment image on the daemon, with its last use."""
    found = []
    for image in client.api.images(filters={"label": LABEL_KEY}):
        labels = image.get("Labels") or {}
        for tag in image.get("RepoTags") or ():
            if tag == "<none>:<none>":
                continue
            built = _created(labels, float(image.get("Created") or 0))
            last = max(used.get(tag, 0.0), built)
            found.append(EnvironmentImage(tag, labels.get(LABEL_REPOSITORY, ""), last))
    return found


def prune_images(
    client: docker.DockerClient,
    used: Mapping[str, float],
    settings: EnvironmentSettings,
    now: float,
) -> list[str]:
    """Apply the policy (blocking); the tags removed. Images in use stay."""
    removed = []
    for tag in select_prunable(list_images(client, used), now, settings):
        try:
            client.api.remove_image(tag, force=False, noprune=False)
        except APIError as exc:
            log.info("environment image %s kept: %s", tag, exc.explanation or exc)
            continue
        except DockerException:
            log.warning("could not prune %s", tag, exc_info=True)
            continue
        removed.append(tag)
    if removed:
        log.info("pruned environment images: %s", ", ".join(removed))
    return removed
