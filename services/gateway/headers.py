"""Security headers on every HTTP answer: a Content-Security-Policy and ``nosniff``.

The dashboard is served from the same origin as the API and holds a bearer token, so
its pages may load scripts, styles and connections from this origin only. The API
explorer (``/docs``, ``/redoc``) is off by default because FastAPI's pages load their
scripts from a CDN; when an operator turns it on (``GATEWAY_DOCS=1``) those two pages
get a policy that allows it, and nothing else does.
"""

from __future__ import annotations

from services.gateway.metrics import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The policy of every answer (the dashboard's scripts and styles are files of its own)."""
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https:; "
    "style-src 'self' 'unsafe-inline' https:; img-src 'self' data: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
"""The opt-in API explorer's policy: its inline bootstrap and CDN assets."""
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


class SecurityHeaders:
    """Add the CSP (and ``X-Content-Type-Options: nosniff``) to every HTTP answer."""

    def __init__(self, app: ASGIApp, docs: bool = False) -> None:
        self.app = app
        self.docs = docs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_CSP if self.docs and scope.get("path") in DOCS_PATHS else CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"content-security-policy", b"x-content-type-options")
                ]
                headers.append((b"content-security-policy", policy.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
