"""The gitops service: every git operation, answered over NATS request/reply."""

from __future__ import annotations

from faststream import FastStream

from services.gitops.handlers import register
from services.gitops.repos import RepoCache
from services.gitops.settings import GitOpsSettings
from shared.bus import make_broker
from shared.service import add_health
from shared.settings import GitSettings, HomeSettings, HostSettings, NatsSettings


def create_app(
    nats: NatsSettings | None = None,
    home: HomeSettings | None = None,
    git: GitSettings | None = None,
    gitops: GitOpsSettings | None = None,
    host: HostSettings | None = None,
) -> FastStream:
    """Wire broker, health probe and handlers; nothing touches disk until a request.

    It answers the agents' requests of its host (``MOSAIC_HOST_ID``) over the workspace
    under ``MOSAIC_HOME``: every gitops of one host must be given the same home."""
    broker = make_broker(nats or NatsSettings(), "gitops")
    add_health(broker, "gitops")
    cache = RepoCache(home or HomeSettings(), git or GitSettings(), gitops or GitOpsSettings())
    register(broker, cache, (host or HostSettings()).mosaic_host_id)
    return FastStream(broker)
