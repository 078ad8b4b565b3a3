"""The federation router the app includes: hub and spoke endpoints, with the lifespan
that loads this instance's identity."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.federation import hub, inbound
from services.gateway.federation.runtime import lifespan

router = APIRouter(lifespan=lifespan)
router.include_router(inbound.router)
router.include_router(hub.router)
