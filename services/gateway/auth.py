"""Bearer-token auth with two roles. Tokens are compared in constant time, never logged.

Every path but ``/health`` and the dashboard shell needs a token in
``Authorization: Bearer <token>``. The live feed also takes it as a ``token`` query
parameter (a browser's ``EventSource`` cannot set headers) and, on the WebSocket, as the
first message; see docs/api.md for the trade-off.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.settings import GatewaySettings

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="MOSAIC_API_TOKEN (operator) or MOSAIC_ADMIN_TOKEN (admin)",
)


class Role(IntEnum):
    """Admins can do everything operators can, plus kill-all and resume."""

    OPERATOR = 1
    ADMIN = 2

    @property
    def label(self) -> str:
        """``operator`` or ``admin``."""
        return self.name.lower()


class GatewayConfigError(RuntimeError):
    """The gateway cannot start as configured (no token at all, for instance)."""


def check_tokens(settings: GatewaySettings) -> None:
    """Refuse to run an API nobody can call, or that anybody could."""
    tokens = [t for t in (settings.mosaic_api_token, settings.mosaic_admin_token) if t]
    if not tokens:
        raise GatewayConfigError(
            "no API token configured: set MOSAIC_API_TOKEN (operators) and/or "
            "MOSAIC_ADMIN_TOKEN (admins); `mosaic up` generates both under $MOSAIC_HOME/secrets"
        )


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


def authorize(token: str | None, settings: GatewaySettings, minimum: Role) -> Role:
    """The caller's role, or the 401/403 ``HTTPException`` to answer with."""
    if not token:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    role = role_of(token, settings)
    if role is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    if role < minimum:
        raise HTTPException(403, f"this operation needs the {minimum.label} role")
    return role


def _require(minimum: Role) -> Callable[..., Awaitable[Role]]:
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Role:
        token = credentials.credentials if credentials else None
        return authorize(token, request.app.state.settings, minimum)

    return check


async def _require_feed(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[
        str | None,
        Query(
            max_length=512,
            description="the token, for clients that cannot set headers (browser EventSource); "
            "prefer the Authorization header, query strings end up in histories",
        ),
    ] = None,
) -> Role:
    given = credentials.credentials if credentials else token
    return authorize(given, request.app.state.settings, Role.OPERATOR)


RequireOperator = Annotated[Role, Depends(_require(Role.OPERATOR))]
RequireAdmin = Annotated[Role, Depends(_require(Role.ADMIN))]
RequireFeedReader = Annotated[Role, Depends(_require_feed)]
