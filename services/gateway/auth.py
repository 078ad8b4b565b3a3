"""Bearer-token auth with two roles. Tokens are compared in constant time, never logged."""

from __future__ import annotations

import hmac
from enum import IntEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.settings import GatewaySettings

_bearer = HTTPBearer(auto_error=False, description="MOSAIC_API_TOKEN or MOSAIC_ADMIN_TOKEN")


class Role(IntEnum):
    """Admins can do everything operators can, plus kill-all and resume."""

    OPERATOR = 1
    ADMIN = 2


def _matches(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def role_of(token: str, settings: GatewaySettings) -> Role | None:
    """The role a token grants, or None."""
    admin = settings.mosaic_admin_token.get_secret_value() if settings.mosaic_admin_token else None
    api = settings.mosaic_api_token.get_secret_value() if settings.mosaic_api_token else None
    if _matches(token, admin):
        return Role.ADMIN
    if _matches(token, api):
        return Role.OPERATOR
    return None


def _require(minimum: Role):  # type: ignore[no-untyped-def]
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Role:
        if credentials is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        role = role_of(credentials.credentials, request.app.state.settings)
        if role is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        if role < minimum:
            raise HTTPException(403, f"this operation needs the {minimum.name.lower()} role")
        return role

    return check


RequireOperator = Annotated[Role, Depends(_require(Role.OPERATOR))]
RequireAdmin = Annotated[Role, Depends(_require(Role.ADMIN))]
