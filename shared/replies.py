"""How a service answers a request it cannot read: one rule for every handler.

Handlers are typed (their single argument is the request's model), so FastStream
validates the body before the handler runs. Without this, a malformed request raised
inside FastStream and the requester heard nothing until its time-out; with it, the
requester gets at once a reply whose ``error`` names each bad field. Every reply model
has an ``error: Failure | None`` and defaults for the rest, so this one shape parses as
any of them. The rejected values are never echoed back (they may hold secrets).
"""

from __future__ import annotations

from faststream import ExceptionMiddleware
from pydantic import ValidationError

from shared.messages.base import Failure

INVALID_REQUEST = "invalid_request"


def describe(exc: ValidationError) -> str:
    """``field: problem; …`` with camelCase field paths, without the values."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"]]
        if loc and loc[0] in ("request", "body"):  # the handler's argument name
            loc = loc[1:]
        problems.append(f"{'.'.join(loc) or 'body'}: {error['msg']}")
    return "; ".join(problems)


def refusal(exc: ValidationError) -> bytes:
    """The reply to a request whose body does not validate."""
    failure = Failure(code=INVALID_REQUEST, message=f"bad request: {describe(exc)}")
    return b'{"error":' + failure.to_bytes() + b"}"


def refuse_malformed() -> ExceptionMiddleware:
    """Broker middleware: a request that does not validate is answered with ``refusal``."""
    middleware = ExceptionMiddleware()

    @middleware.add_handler(ValidationError, publish=True)
    def _answer(exc: ValidationError) -> bytes:
        return refusal(exc)

    return middleware
