"""Federation errors at the HTTP edge: a route class that answers them in the one shape."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from services.gateway.errors import error_response
from shared.federation.errors import FederationError


class RemoteRefusedError(FederationError):
    """A peer executed our verified command and refused it; its status is passed on."""

    code = "peer_refused"

    def __init__(self, peer_id: str, status: int, code: str, message: str) -> None:
        super().__init__(f"peer {peer_id} refused: {message}", code=code)
        self.status = status
        self.peer_id = peer_id


class FederationRoute(APIRoute):
    """Answers ``FederationError`` with its status and code (the app's handlers would
    treat them as generic ``MosaicError``s)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The normal handler, with federation errors translated."""
        handler = super().get_route_handler()

        async def translated(request: Request) -> Response:
            try:
                return await handler(request)
            except FederationError as exc:
                retry_after = getattr(exc, "retry_after", 1 if exc.retryable else None)
                headers = {"Retry-After": str(retry_after)} if retry_after else None
                return error_response(exc.status, exc.code, exc.message, headers=headers)

        return translated
