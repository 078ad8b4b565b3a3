"""What federation routes need besides the gateway's resources: the identity, settings,
an HTTP client to peers, and the Valkey-backed registries. Opened in the router's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Request

from services.gateway.deps import Resources, resources_of
from services.gateway.federation.peers import PeerRegistry
from services.gateway.federation.ratelimit import SourceBuckets
from services.gateway.federation.replay import ReplayGuard
from shared.federation.agents import Ownership, RemoteAgents
from shared.federation.identity import Identity, load_or_create_identity
from shared.federation.settings import FederationSettings
from shared.settings import HomeSettings

log = logging.getLogger(__name__)


@dataclass
class FederationRuntime:
    """Opened once per gateway process."""

    identity: Identity
    settings: FederationSettings
    public_url: str
    http: httpx.AsyncClient
    unverified: SourceBuckets


@dataclass
class Federation:
    """Per request: the runtime plus registries over the gateway's Valkey."""

    runtime: FederationRuntime
    deps: Resources
    peers: PeerRegistry
    guard: ReplayGuard
    ownership: Ownership
    remote: RemoteAgents

    @property
    def me(self) -> str:
        """This instance's id."""
        return self.runtime.identity.instance_id


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load (or create, on first start) the identity and open the peer HTTP client."""
    settings: FederationSettings = app.state.federation_settings
    home = HomeSettings().mosaic_home
    identity = load_or_create_identity(home, settings.mosaic_instance_id)
    gateway = app.state.settings
    url = settings.federation_public_url or (
        f"http://{gateway.gateway_host}:{gateway.gateway_port}"
    )
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.federation_timeout_s),
        follow_redirects=False,
        headers={"User-Agent": f"mosaic-federation/{identity.instance_id}"},
    )
    buckets = SourceBuckets(
        settings.federation_unverified_burst, settings.federation_unverified_per_second
    )
    app.state.federation = FederationRuntime(identity, settings, url.rstrip("/"), http, buckets)
    log.info("federation identity %s (%s)", identity.instance_id, url)
    try:
        yield
    finally:
        await http.aclose()


def federation_of(request: Request) -> Federation:
    """The federation context of the app serving ``request``."""
    runtime: FederationRuntime = request.app.state.federation
    deps = resources_of(request)
    redis = deps.store.redis
    prefix = deps.store.prefix
    return Federation(
        runtime=runtime,
        deps=deps,
        peers=PeerRegistry(redis, prefix),
        guard=ReplayGuard(redis, prefix, runtime.settings.replay_ttl_s),
        ownership=Ownership(redis, prefix),
        remote=RemoteAgents(redis, prefix),
    )


Fed = Annotated[Federation, Depends(federation_of)]
