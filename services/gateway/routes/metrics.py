"""``GET /metrics``: Prometheus text format, for a scraper holding the operator token."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from services.gateway.auth import RequireOperator
from services.gateway.deps import Deps
from services.gateway.errors import ErrorResponse

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {
                CONTENT_TYPE_LATEST: {
                    "schema": {"type": "string"},
                    "example": 'mosaic_agents{state="running"} 2.0\n',
                }
            },
        },
        401: {"model": ErrorResponse, "description": "missing or invalid token"},
        503: {"model": ErrorResponse, "description": "Valkey unavailable"},
    },
)
async def metrics(deps: Deps, _: RequireOperator) -> Response:
    """Gateway metrics, agents and tasks by state, and the deployment's spend (two
    Valkey reads per scrape)."""
    deps.metrics.set_counts(await deps.store.counts())
    deps.metrics.spend.totals = await deps.store.spend_totals()
    return Response(deps.metrics.render(), media_type=CONTENT_TYPE_LATEST)
