"""Resources opened in the lifespan, handed to routes by injection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.gateway.feed import FeedHub
from services.gateway.intake import IntakeChecks
from services.gateway.metrics import GatewayMetrics
from services.gateway.settings import GatewaySettings
from shared.messages.agents import AgentRecord
from shared.settings import BudgetSettings, QualitySettings, host_id
from shared.spawners import SpawnerRegistry
from shared.store import StateStore
from shared.tracker import AgentTracker


@dataclass
class Resources:
    """Everything a request handler may need, opened once per process."""

    broker: NatsBroker
    js: JetStreamContext
    store: StateStore
    tracker: AgentTracker
    quality: QualitySettings
    started: float
    feed: FeedHub
    metrics: GatewayMetrics
    settings: GatewaySettings
    spawners: SpawnerRegistry
    intake: IntakeChecks
    kill_wait_s: float = 5.0
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    host: str = field(default_factory=host_id)
    """The gateway's host (``MOSAIC_HOST_ID``): asked about a worktree named by path, or of
    an agent whose record names no host. An agent's questions go to the agent's host."""

    def host_of(self, record: AgentRecord) -> str:
        """The host whose gitops and gates hold ``record``'s worktree."""
        return record.host or self.host


def resources_of(request: Request) -> Resources:
    """The resources of the app serving ``request`` (also works for a WebSocket)."""
    resources: Resources = request.app.state.resources
    return resources


Deps = Annotated[Resources, Depends(resources_of)]
