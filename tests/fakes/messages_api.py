"""A local HTTP server speaking enough of the Anthropic Messages API for the real SDK.

Tests queue what the "model" answers, point ``ANTHROPIC_BASE_URL`` (or the SDK's
``base_url``) at ``.url``, and afterwards inspect ``.requests``::

    api.enqueue(reply(tool_use("read_file", {"path": "app.py"})))
    api.enqueue(overloaded())                # a 529; the SDK retries it
    api.enqueue(reply(text("done")))         # stop_reason end_turn
    ...
    api.requests[1].tool_results()           # the tool_result blocks sent back

Requests are checked the way the real API checks them where a loop can get it wrong
(every ``tool_use`` answered by a ``tool_result`` in the next user message, at most four
``cache_control`` breakpoints, no empty text blocks); a violation answers 400 so the
test fails loudly. With nothing queued the server answers 400 too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def text(value: str) -> dict[str, Any]:
    """A ``text`` content block."""
    return {"type": "text", "text": value}


def tool_use(name: str, input: Any, id: str | None = None) -> dict[str, Any]:
    """A ``tool_use`` content block (``input`` may be deliberately malformed)."""
    return {
        "type": "tool_use",
        "id": id or f"toolu_{uuid.uuid4().hex[:20]}",
        "name": name,
        "input": input,
    }


@dataclass
class FakeReply:
    """A 200 answer; ``stop_reason`` defaults to ``tool_use`` if any block is one."""

    content: list[dict[str, Any]]
    stop_reason: str | None = None
    usage: dict[str, int] | None = None
    delay: float = 0.0


@dataclass
class ApiError:
    """An error answer with the API's JSON error body."""

    status: int
    type: str
    message: str
    retry_after_ms: int | None = None
    delay: float = 0.0


def reply(
    *content: dict[str, Any],
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
    delay: float = 0.0,
) -> FakeReply:
    """A message made of ``content`` blocks."""
    return FakeReply(list(content), stop_reason, usage, delay)


def overloaded(message: str = "Overloaded") -> ApiError:
    """529 ``overloaded_error`` (retried by the SDK; ``retry-after-ms`` keeps tests fast)."""
    return ApiError(529, "overloaded_error", message, retry_after_ms=10)


def rate_limited(
    message: str = "Number of request tokens has exceeded your rate limit",
) -> ApiError:
    """429 ``rate_limit_error``."""
    return ApiError(429, "rate_limit_error", message, retry_after_ms=10)


def server_error(message: str = "Internal server error") -> ApiError:
    """500 ``api_error``."""
    return ApiError(500, "api_error", message, retry_after_ms=10)


def unauthorized(message: str = "invalid x-api-key") -> ApiError:
    """401 ``authentication_error`` (not retried)."""
    return ApiError(401, "authentication_error", message)


Responder = Callable[["RecordedRequest"], FakeReply | ApiError]
QueueItem = FakeReply | ApiError | Responder


@dataclass
class RecordedRequest:
    """One request as received: JSON body and headers (lower-case names)."""

    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 0
    answered_at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def api_key(self) -> str | None:
        """The credential the client sent."""
        return _credential(self.headers)

    def last_user_blocks(self) -> list[dict[str, Any]]:
        """Content blocks of the newest user message."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                return [text(content)] if isinstance(content, str) else list(content or [])
        return []

    def tool_results(self) -> list[dict[str, Any]]:
        """The ``tool_result`` blocks of the newest user message."""
        return [b for b in self.last_user_blocks() if b.get("type") == "tool_result"]


def _credential(headers: dict[str, str]) -> str | None:
    """The key sent, as ``x-api-key`` or ``Authorization: Bearer`` (SDK versions differ)."""
    if "x-api-key" in headers:
        return headers["x-api-key"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [text(content)]
    return [b for b in content or [] if isinstance(b, dict)]


def _check_request(body: dict[str, Any]) -> str | None:
    """What the real API would refuse in ``body``, or ``None``."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    if body.get("stream"):
        return "stream: the fake Messages API does not stream"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages: first message must use the user role"
    breakpoints = sum(
        1 for b in body.get("system") or [] if isinstance(b, dict) and "cache_control" in b
    )
    breakpoints += sum(1 for t in body.get("tools") or [] if "cache_control" in t)
    for index, message in enumerate(messages):
        blocks = _blocks(message)
        breakpoints += sum(1 for b in blocks if "cache_control" in b)
        if any(b.get("type") == "text" and not b.get("text") for b in blocks):
            return f"messages.{index}: text content blocks must be non-empty"
        if not blocks and index < len(messages) - 1:
            return f"messages.{index}: all messages must have non-empty content"
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
        if message.get("role") == "assistant" and pending:
            following = _blocks(messages[index + 1]) if index + 1 < len(messages) else []
            answered = {b.get("tool_use_id") for b in following if b.get("type") == "tool_result"}
            if index + 1 < len(messages) and not pending <= answered:
                return (
                    f"messages.{index + 1}: tool_use ids were found without tool_result blocks "
                    f"immediately after: {', '.join(sorted(pending - answered))}"
                )
        if message.get("role") == "user" and index > 0:
            previous = {
                b.get("id") for b in _blocks(messages[index - 1]) if b.get("type") == "tool_use"
            }
            for block in blocks:
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in previous:
                    return f"messages.{index}: unexpected tool_use_id in tool_result blocks"
    if breakpoints > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
    return None


class FakeMessagesAPI:
    """The server: start it (or use the fixture), queue answers, read ``requests``."""

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        """If set, requests with another key (``x-api-key`` or bearer) get a 401."""
        self.requests: list[RecordedRequest] = []
        self.fallback: Responder | None = None
        """Answers when the queue is empty (e.g. an always-approving reviewer)."""
        self._queue: deque[QueueItem] = deque()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL to give the SDK (no ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    def enqueue(self, *items: QueueItem) -> None:
        """Answers for the next requests, in order; a callable is called with the request."""
        with self._lock:
            self._queue.extend(items)

    def pending(self) -> int:
        """How many queued answers are still unused."""
        with self._lock:
            return len(self._queue)

    def tool_outputs(self) -> list[str]:
        """Every tool result the agent sent back so far, as text."""
        found: list[str] = []
        for request in self.requests:
            for block in request.tool_results():
                content = block.get("content")
                if isinstance(content, list):
                    found.append("".join(str(part.get("text", "")) for part in content))
                else:
                    found.append(str(content))
        return found

    def reset(self) -> None:
        """Forget queued answers, recorded requests, the fallback and the expected key."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
        self.fallback = None
        self.api_key = None

    def _next(self, request: RecordedRequest) -> FakeReply | ApiError:
        with self._lock:
            item = self._queue.popleft() if self._queue else None
        if item is None:
            if self.fallback is None:
                return ApiError(
                    400, "invalid_request_error", "fake Messages API: no response queued"
                )
            item = self.fallback
        return item(request) if callable(item) else item

    async def _messages(self, http: Request) -> JSONResponse:
        headers = {k.lower(): v for k, v in http.headers.items()}
        try:
            body = json.loads(await http.body())
        except ValueError:
            body = {}
        recorded = RecordedRequest(body=body if isinstance(body, dict) else {}, headers=headers)
        with self._lock:
            self.requests.append(recorded)
        if self.api_key is not None and _credential(headers) != self.api_key:
            answer: FakeReply | ApiError = unauthorized()
        elif (problem := _check_request(recorded.body)) is not None:
            answer = ApiError(400, "invalid_request_error", problem)
        else:
            answer = self._next(recorded)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        recorded.status = 200 if isinstance(answer, FakeReply) else answer.status
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        if isinstance(answer, ApiError):
            extra = {"request-id": request_id}
            if answer.retry_after_ms is not None:
                extra["retry-after-ms"] = str(answer.retry_after_ms)
            if answer.status == 400:
                extra["x-should-retry"] = "false"
            error = {"type": "error", "error": {"type": answer.type, "message": answer.message}}
            return JSONResponse({**error, "request_id": request_id}, answer.status, headers=extra)
        has_tool = any(b.get("type") == "tool_use" for b in answer.content)
        usage = {
            "input_tokens": max(1, len(json.dumps(recorded.body)) // 4),
            "output_tokens": max(1, len(json.dumps(answer.content)) // 4),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        usage.update(answer.usage or {})
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": recorded.body.get("model"),
            "content": answer.content,
            "stop_reason": answer.stop_reason or ("tool_use" if has_tool else "end_turn"),
            "stop_sequence": None,
            "usage": usage,
        }
        return JSONResponse(message, headers={"request-id": request_id})

    async def _not_found(self, http: Request) -> JSONResponse:
        error = {
            "type": "not_found_error",
            "message": f"fake Messages API: no route {http.url.path}",
        }
        return JSONResponse({"type": "error", "error": error}, 404)

    def start(self) -> FakeMessagesAPI:
        """Serve on a free loopback port in a background thread; returns once listening."""
        app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/{path:path}", self._not_found, methods=["GET", "POST"]),
            ]
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="fake-messages-api",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake Messages API did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
