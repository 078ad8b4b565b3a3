"""The pruning policy: keep the N most recently used per repository, drop the stale."""

from __future__ import annotations

import pytest

from shared.environments.prune import DAY_S, EnvironmentImage, select_prunable
from shared.environments.settings import EnvironmentSettings

pytestmark = pytest.mark.unit

NOW = 1_000 * DAY_S


def test_keeps_the_most_recent_per_repository_and_drops_the_unused() -> None:
    settings = EnvironmentSettings(keep_per_repository=2, prune_unused_days=10)
    images = [
        EnvironmentImage("mosaic-env/a:1", "a", NOW - 1),
        EnvironmentImage("mosaic-env/a:2", "a", NOW - 2),
        EnvironmentImage("mosaic-env/a:3", "a", NOW - 3),  # third of a: over the count
        EnvironmentImage("mosaic-env/b:1", "b", NOW - 11 * DAY_S),  # unused for 11 days
        EnvironmentImage("mosaic-env/c:1", "c", NOW - 9 * DAY_S),
    ]
    assert select_prunable(images, NOW, settings) == ["mosaic-env/b:1", "mosaic-env/a:3"]


def test_nothing_to_prune() -> None:
    assert select_prunable([], NOW, EnvironmentSettings()) == []
