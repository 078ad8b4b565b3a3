"""The dashboard: a static shell (HTML, CSS, JS from this package, no data in it).

It asks for a token, keeps it in sessionStorage, and reads everything through the API.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException, Response

router = APIRouter(include_in_schema=False)

_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "agent.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return resources.files("services.gateway").joinpath("static", name).read_bytes()


@router.get("/")
async def shell() -> Response:
    """The dashboard page (open to all: it holds no data)."""
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/dashboard/{name}")
async def asset(name: str) -> Response:
    """The dashboard's scripts and style sheet."""
    if name not in _ASSETS:
        raise HTTPException(404, f"no dashboard asset {name!r}")
    return Response(_read(name), media_type=_ASSETS[name], headers=_HEADERS)
