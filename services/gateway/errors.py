"""One error shape for every 4xx/5xx: ``{"error": {"code", "message", "field"?, "details"?}}``.

Every answer that is not a success goes through here: validation errors, auth, unknown
routes (404), wrong methods (405), oversized bodies (413), our own errors, and anything
unexpected (500, with no internals in the body).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.routing import Match

from shared.errors import BusUnavailableError, MosaicError, NotFoundError

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    """One invalid field and what is wrong with it."""

    field: str
    problem: str


class ErrorBody(BaseModel):
    """What went wrong, naming the field when a field is to blame."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "code": "invalid_request",
                "message": "priority: Input should be less than or equal to 10",
                "field": "priority",
                "details": [
                    {"field": "priority", "problem": "Input should be less than or equal to 10"}
                ],
            }
        }
    )

    code: str = Field(description="machine-readable: invalid_request, unauthorized, not_found…")
    message: str = Field(description="for people; starts with the field when one is to blame")
    field: str | None = Field(default=None, description="dotted path of the offending field")
    details: list[FieldProblem] | None = Field(
        default=None, description="every invalid field (at most 20)"
    )


class ErrorResponse(BaseModel):
    """The envelope of every error answer."""

    error: ErrorBody


class InvalidInputError(MosaicError):
    """Input that passed the schema but is still wrong (answered 422, naming the field)."""

    code = "invalid_request"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A JSON error answer in the one shape clients can rely on."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message, **extra))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Register the translators from our errors to HTTP answers."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _field_of(tuple(first.get("loc", ())))
        details = [
            {"field": _field_of(tuple(e.get("loc", ()))), "problem": str(e.get("msg"))}
            for e in errors[:20]
        ]
        return error_response(
            422, "invalid_request", f"{field}: {first.get('msg')}", field=field, details=details
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:
            # a body that is not UTF-8 JSON: the same answer as malformed JSON
            return error_response(
                422, "invalid_request", "body: not valid JSON (UTF-8)", field="body"
            )
        code = _CODES.get(exc.status_code, "error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such path"
        if exc.status_code == 405 and detail == "Method Not Allowed":
            detail = "method not allowed on this path"
            # Starlette names only the first route's methods; a path may have several.
            allow = _allowed_methods(app, request)
            if allow:
                return error_response(405, "method_not_allowed", detail, {"Allow": allow})
        field = None
        if exc.status_code == 422 and ": " in detail:
            field = detail.split(": ", 1)[0]
        return error_response(exc.status_code, code, detail, headers=exc.headers, field=field)

    @app.exception_handler(InvalidInputError)
    async def invalid_input(_: Request, exc: InvalidInputError) -> JSONResponse:
        return error_response(422, exc.code, exc.message, field=exc.field)

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, exc.code, exc.message)

    @app.exception_handler(BusUnavailableError)
    async def unavailable(_: Request, exc: BusUnavailableError) -> JSONResponse:
        return error_response(503, exc.code, exc.message, headers={"Retry-After": "1"})

    @app.exception_handler(MosaicError)
    async def mosaic_error(_: Request, exc: MosaicError) -> JSONResponse:
        status = 503 if exc.retryable else 409
        return error_response(status, exc.code, exc.message)

    async def store_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("a dependency is unreachable: %s", type(exc).__name__)
        return error_response(
            503, "unavailable", "state store unavailable", headers={"Retry-After": "1"}
        )

    for kind in (RedisConnectionError, RedisTimeoutError, ConnectionError):
        app.add_exception_handler(kind, store_down)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal error (see the gateway's log)")


def _allowed_methods(app: FastAPI, request: Request) -> str:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def refuse_unknown_query(request: HTTPConnection) -> None:
    """A query parameter the route does not declare is an error, not something to ignore.

    (The WebSocket feed reads its parameters itself.)
    """
    if request.scope["type"] != "http":
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    allowed = _query_names(dependant)
    for name in request.query_params:
        if name not in allowed:
            raise InvalidInputError(name[:64], "unknown query parameter")


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(dependant: Any) -> frozenset[str]:
    key = id(dependant)
    if key not in _QUERY_NAMES:
        names: set[str] = set()
        pending = [dependant]
        while pending:
            current = pending.pop()
            names.update(str(p.alias) for p in getattr(current, "query_params", []))
            pending.extend(getattr(current, "dependencies", []))
        _QUERY_NAMES[key] = frozenset(names)
    return _QUERY_NAMES[key]
