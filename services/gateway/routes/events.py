"""The live feed of agent events: Server-Sent Events and WebSocket.

Both carry the same ``AgentEvent`` JSON, in ``seq`` order per agent. With ``agentId``
and ``since`` a (re)connecting client first gets that agent's stored events after
``since``, then live ones, with no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from services.gateway.auth import RequireFeedReader, Role, authorize
from services.gateway.deps import Deps, Resources
from services.gateway.errors import ErrorResponse, error_response
from services.gateway.feed import FeedClient, follow
from shared.ids import AGENT_ID_PATTERN
from shared.messages.agents import AgentEvent

log = logging.getLogger(__name__)

router = APIRouter(prefix="/events", tags=["events"])

AgentFilter = Annotated[
    str | None,
    Query(
        alias="agentId",
        pattern=AGENT_ID_PATTERN,
        description="only this agent's events",
    ),
]
Since = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**53,
        description="replay this agent's stored events with a greater seq first (needs agentId)",
    ),
]

_SSE_EXAMPLE = (
    'event: ready\ndata: {"role":"operator"}\n\n'
    "id: 3f2a9c0d1e4b5a67:2\nevent: agent\n"
    'data: {"agentId":"3f2a9c0d1e4b5a67","taskId":"task-1","kind":"state","seq":2,'
    '"state":"running","previous":"spawning","at":"2025-01-01T12:00:00Z","detail":{}}\n\n'
)


def _since(since: int | None, agent_id: str | None, last_event_id: str | None) -> int | None:
    if since is not None and agent_id is None:
        raise HTTPException(422, "since: replay needs agentId (seq is per agent)")
    if since is None and agent_id is not None and last_event_id:
        owner, _, seq = last_event_id.partition(":")
        if owner == agent_id and seq.isdigit():
            return int(seq)
    return since


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "A stream of `agent` events (data: AgentEvent JSON, id: "
            "`<agentId>:<seq>`), a `ready` event first, a `dropped` event if the client "
            "fell too far behind, and comment lines as heartbeats.",
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}
            },
        },
        401: {"model": ErrorResponse, "description": "missing or invalid token"},
        422: {"model": ErrorResponse, "description": "invalid agentId or since; names the field"},
    },
)
async def stream(
    request: Request,
    deps: Deps,
    role: RequireFeedReader,
    agent_id: AgentFilter = None,
    since: Since = None,
) -> StreamingResponse:
    """Live agent events as Server-Sent Events (token in the header, or `token` query)."""
    since = _since(since, agent_id, request.headers.get("last-event-id"))
    return StreamingResponse(
        _sse(deps, agent_id, since, role),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _sse(
    deps: Resources, agent_id: str | None, since: int | None, role: Role
) -> AsyncIterator[str]:
    streamed = deps.metrics.events_streamed.labels("sse")
    client = deps.feed.connect(agent_id, "sse")
    try:
        yield "retry: 3000\n"
        yield f"event: ready\ndata: {json.dumps({'role': role.label})}\n\n"
        heartbeat = deps.settings.feed_heartbeat_s
        async for event in follow(deps.feed, deps.store, client, since, heartbeat):
            if event is None:
                yield ": keepalive\n\n"
                continue
            streamed.inc()
            data = event.model_dump_json()
            yield f"id: {event.agent_id}:{event.seq}\nevent: agent\ndata: {data}\n\n"
        if client.dropped:
            yield f"event: dropped\ndata: {json.dumps(_dropped())}\n\n"
    finally:
        deps.feed.disconnect(client)


def _dropped() -> dict[str, Any]:
    return {
        "error": {
            "code": "too_slow",
            "message": "this client fell too far behind and was dropped; reconnect with since",
        }
    }


# WebSocket close codes (4000-4999 are for applications).
WS_BAD_REQUEST = 4400
WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403
WS_TOO_SLOW = 4408


SUBPROTOCOL = "mosaic.bearer"
"""Browsers cannot set headers on a WebSocket: they offer ``mosaic.bearer`` and
``mosaic.bearer.<base64url(token)>``; the server accepts with ``mosaic.bearer``."""


def _ws_token(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The token (header, subprotocol or ``token`` query) and the subprotocol to accept."""
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), None
    offered = websocket.headers.get("sec-websocket-protocol", "")
    for item in (p.strip() for p in offered.split(",")):
        if item.startswith(SUBPROTOCOL + "."):
            encoded = item[len(SUBPROTOCOL) + 1 :]
            try:
                token = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                return None, None
            return token, SUBPROTOCOL
    return websocket.query_params.get("token"), None


async def _ws_deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse the handshake: an HTTP answer where the server can send one, else 403."""
    try:
        await websocket.send_denial_response(error_response(status, code, message))
    except RuntimeError:
        await websocket.close(WS_UNAUTHORIZED if status == 401 else WS_FORBIDDEN, message[:120])


@router.websocket("/ws")
async def websocket_feed(websocket: WebSocket) -> None:
    """Live agent events over a WebSocket; see docs/api.md for the message shapes.

    The token is checked, and the connection cap, before the socket is accepted: a
    refused client never gets an open socket (an HTTP 401/403/503 answer instead).
    """
    deps: Resources = websocket.app.state.resources
    metrics = deps.metrics.ws_refused
    token, subprotocol = _ws_token(websocket)
    try:
        role = authorize(token, deps.settings, Role.OPERATOR)
    except HTTPException as exc:
        metrics.labels("unauthorized").inc()
        await _ws_deny(websocket, exc.status_code, "unauthorized", str(exc.detail))
        return
    cap = deps.settings.ws_max_connections
    if deps.feed.count("ws") >= cap:
        metrics.labels("full").inc()
        message = f"this gateway serves at most {cap} WebSockets; retry later"
        await _ws_deny(websocket, 503, "too_many_connections", message)
        return
    params = websocket.query_params
    agent_id = params.get("agentId")
    raw_since = params.get("since")
    client = deps.feed.connect(agent_id, "ws")  # counted from now: no await since the check
    try:
        await websocket.accept(subprotocol=subprotocol)
    except BaseException:
        deps.feed.disconnect(client)
        raise
    problem = _ws_params(agent_id, raw_since)
    if problem is not None:
        deps.feed.disconnect(client)
        await _ws_fail(websocket, WS_BAD_REQUEST, "invalid_request", problem[1], problem[0])
        return
    since = int(raw_since) if raw_since is not None else None
    try:
        await websocket.send_json({"type": "ready", "role": role.label})
        sender = asyncio.create_task(_ws_send(websocket, deps, client, since))
        receiver = asyncio.create_task(_ws_drain(websocket))
        done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if sender in done and client.dropped:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.send_json({"type": "dropped", **_dropped()}), 1)
                await websocket.close(WS_TOO_SLOW, "too slow")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        deps.feed.disconnect(client)


def _ws_params(agent_id: str | None, since: str | None) -> tuple[str, str] | None:
    if agent_id is not None and not re.fullmatch(AGENT_ID_PATTERN, agent_id):
        return "agentId", f"agentId: should match {AGENT_ID_PATTERN}"
    if since is not None:
        if not since.isdigit() or int(since) > 2**53:
            return "since", "since: should be a non-negative integer"
        if agent_id is None:
            return "since", "since: replay needs agentId (seq is per agent)"
    return None


async def _ws_fail(
    websocket: WebSocket, close_code: int, code: str, message: str, field: str | None = None
) -> None:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "error": error})
        await websocket.close(close_code, message[:120])


async def _ws_send(
    websocket: WebSocket, deps: Resources, client: FeedClient, since: int | None
) -> None:
    streamed = deps.metrics.events_streamed.labels("ws")
    heartbeat = deps.settings.feed_heartbeat_s
    async for event in follow(deps.feed, deps.store, client, since, heartbeat):
        if event is None:
            await websocket.send_json({"type": "ping"})
            continue
        await websocket.send_text(_ws_event(event))
        streamed.inc()


def _ws_event(event: AgentEvent) -> str:
    return f'{{"type":"event","event":{event.model_dump_json()}}}'


async def _ws_drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, ValidationError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
