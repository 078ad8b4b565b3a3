"""What the gateway client raises: one ``ClientError`` subclass per kind of answer, so a
caller can tell bad input from a missing agent from an unavailable system."""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(Exception):
    """An answer that was not a success, or no answer at all (``status`` 0).

    ``body`` is the gateway's error body (``{"error": {...}}``) when it sent one.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "error",
        field: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.body = body


class AuthError(ClientError):
    """401 (no or wrong token) or 403 (the token's role is not enough)."""


class NotFoundError(ClientError):
    """404: no such agent (or path)."""


class InvalidRequestError(ClientError):
    """422 or 413: the request was refused; ``field`` names the culprit."""


class UnavailableError(ClientError):
    """503 after every retry, or the gateway could not be reached (status 0)."""


NOT_TRANSIENT = frozenset({"no_spawner_ready"})
"""503 codes not retried: no spawner can run agents until someone installs or sets what
the message names, so waiting a few seconds only delays saying so."""


def error_for(response: httpx.Response) -> ClientError:
    body: dict[str, Any] | None = None
    try:
        parsed = response.json()
        body = parsed if isinstance(parsed, dict) else None
    except ValueError:
        body = None
    error = body.get("error") if body else None
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or response.reason_phrase or "error")
    code = str(error.get("code") or "error")
    field = error.get("field") if isinstance(error.get("field"), str) else None
    status = response.status_code
    kind: type[ClientError] = ClientError
    if status in (401, 403):
        kind = AuthError
    elif status == 404:
        kind = NotFoundError
    elif status in (413, 422):
        kind = InvalidRequestError
    elif status == 503:
        kind = UnavailableError
    return kind(status, message, code=code, field=field, body=body)
