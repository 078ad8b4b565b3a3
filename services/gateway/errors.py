"""One error shape for every 4xx/5xx: ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import BusUnavailableError, MosaicError, NotFoundError


class ErrorBody(BaseModel):
    """What went wrong, naming the field when a field is to blame."""

    code: str
    message: str
    field: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """The envelope of every error answer."""

    error: ErrorBody


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """A JSON error answer in the one shape clients can rely on."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message, **extra))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
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
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            503: "unavailable",
        }.get(exc.status_code, "error")
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, exc.code, exc.message)

    @app.exception_handler(BusUnavailableError)
    async def unavailable(_: Request, exc: BusUnavailableError) -> JSONResponse:
        return error_response(503, exc.code, exc.message)

    @app.exception_handler(MosaicError)
    async def mosaic_error(_: Request, exc: MosaicError) -> JSONResponse:
        return error_response(503 if exc.retryable else 409, exc.code, exc.message)
