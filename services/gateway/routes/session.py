"""``GET /auth/whoami``: which role the caller's token grants (the dashboard asks)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from services.gateway.auth import RequireOperator
from services.gateway.errors import ErrorResponse
from services.gateway.schemas import _Out

router = APIRouter(prefix="/auth", tags=["auth"])


class WhoAmI(_Out):
    """The caller's role: admins may also kill all agents and resume the queue."""

    role: Literal["operator", "admin"]


@router.get("/whoami", response_model=WhoAmI, responses={401: {"model": ErrorResponse}})
async def whoami(role: RequireOperator) -> WhoAmI:
    """The role of the bearer token."""
    return WhoAmI(role="admin" if role.label == "admin" else "operator")
