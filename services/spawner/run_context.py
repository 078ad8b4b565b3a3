"""What every agent run of this process shares: clients, settings, queues, policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.spawner.clients import Gates, GitOps
from services.spawner.forecast import Forecast
from services.spawner.mergequeue import MergeQueue
from services.spawner.settings import SpawnerSettings
from services.spawner.spending import SpendPolicy
from shared.environments import Environments
from shared.sandbox.base import SandboxFactory
from shared.sandbox.warmpool import WarmPool
from shared.settings import ModelSettings, QualitySettings
from shared.tracker import AgentTracker


@dataclass
class RunContext:
    """What every agent run of this process shares."""

    tracker: AgentTracker
    gitops: GitOps
    gates: Gates
    sandboxes: SandboxFactory
    model: ModelSettings
    quality: QualitySettings
    settings: SpawnerSettings
    instance: str
    deployment: str | None = None
    """This system's id (``shared.deployment``): labels and scopes its sandbox containers."""
    default_image: str | None = None
    """The image a docker sandbox runs when the spec names none (for the record)."""
    environments: Environments | None = None
    """Builds repositories' declared environments; by default from ``sandboxes`` (its
    Docker client) and the tracker's Valkey, so no spawner runs without it."""
    merge_queue: MergeQueue | None = None
    """The merge queues (``options.merge = "queue"``); by default in the tracker's Valkey."""
    spending: SpendPolicy = field(default_factory=SpendPolicy)
    """Prices, the deployment's budget and the audit writer every run's spend goes by."""
    warm: WarmPool | None = None
    """Docker containers made ahead of their agents (``MOSAIC_SANDBOX_WARM``), if any."""
    worktree_roots: dict[str, Path] = field(default_factory=dict)
    """Where gitops makes each repository's agent repositories (learned from its
    answers): where a warm container's slot is put before the next one is made."""
    forecast: Forecast = field(init=False)
    """The conflict forecast: this process's running agents, told of overlapping pushes."""

    @property
    def host(self) -> str:
        """The host this spawner runs agents on: its gitops's and gates's host."""
        return self.gitops.host

    def __post_init__(self) -> None:
        self.forecast = Forecast(self.tracker, self.gitops)
        if self.environments is None:
            self.environments = Environments.for_sandboxes(self.sandboxes, self.tracker.store)
        if self.merge_queue is None:
            self.merge_queue = MergeQueue(
                self.tracker.store,
                lease_s=self.settings.merge_queue_lease_s,
                poll_s=self.settings.merge_queue_poll_s,
            )
