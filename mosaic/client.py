"""A Python client of the gateway's HTTP API (sync ``MosaicClient``, async
``AsyncMosaicClient``), with bounded retries on 503 and typed errors.

    with MosaicClient("http://127.0.0.1:3001", token) as mosaic:
        spawned = mosaic.spawn_agent(request)
        for event in mosaic.events(agent_id=spawned.agent_id):
            ...

Each operation is written once, in ``mosaic.exchanges``; the two classes only carry its
requests, blocking or with ``await``. The answers are the gateway's own models
(``shared.messages.http``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from typing import Any, Self, TypeVar, cast

import httpx

from mosaic import exchanges as op
from mosaic.batch import Dispatched
from mosaic.clienterrors import (
    NOT_TRANSIENT,
    AuthError,
    ClientError,
    InvalidRequestError,
    NotFoundError,
    UnavailableError,
    error_for,
)
from mosaic.exchanges import Call, Exchange, OnDispatched, SpawnBody
from mosaic.sse import FEED_HEADERS, FEED_PATH, FeedCursor, SseParser
from shared.backoff import backoff_delay
from shared.messages.agents import AgentEvent, AgentRecord
from shared.messages.audit import AuditEntry
from shared.messages.checks import PreCheck
from shared.messages.gates import GateDecision
from shared.messages.http import AgentList, HoldStatus, KillResult, SpawnAccepted
from shared.messages.traces import AgentTrace

__all__ = [
    "DEFAULT_URL",
    "AsyncMosaicClient",
    "AuthError",
    "ClientError",
    "InvalidRequestError",
    "MosaicClient",
    "NotFoundError",
    "SseParser",
    "UnavailableError",
    "error_for",
]

DEFAULT_URL = "http://127.0.0.1:3001"

T = TypeVar("T")


class _Base:
    """What both clients share: where, who, and when to try again."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.25,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.headers = {"Accept": "application/json", "User-Agent": "mosaic-client/0.1"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def _delay(self, attempt: int, response: httpx.Response | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when retries are spent."""
        if attempt >= self.retries:
            return None
        delay = backoff_delay(attempt + 1, base=self.backoff, cap=5.0, jitter=0.25)
        after = str(response.headers.get("retry-after", "")) if response is not None else ""
        if after.isdigit():
            delay = max(delay, min(float(after), 10.0))
        return delay

    def _retry_after(
        self, attempt: int, response: httpx.Response | None, exc: httpx.TransportError | None
    ) -> float:
        """The wait before trying a failed request again, or its ``ClientError`` when it
        must not be retried: only an unreachable gateway or a transient 503 is."""
        if response is None:
            failure: ClientError = UnavailableError(0, f"cannot reach {self.url}: {exc}")
        else:
            failure = error_for(response)
            if response.status_code != 503 or failure.code in NOT_TRANSIENT:
                raise failure
        delay = self._delay(attempt, response)
        if delay is None:
            raise failure
        return delay

    def _feed_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, read=None)


def _done(stop: StopIteration) -> Any:
    return stop.value


class MosaicClient(_Base):
    """Blocking client; use as a context manager or call ``close``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout=timeout, retries=retries, backoff=backoff)
        self._http = httpx.Client(
            base_url=self.url, headers=self.headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            error: httpx.TransportError | None = None
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, json=call.body
                )
            except httpx.TransportError as exc:
                error = exc
            if response is not None and response.is_success:
                return response.json()
            time.sleep(self._retry_after(attempt, response, error))
            attempt += 1

    def _run(self, exchange: Exchange[T]) -> T:
        try:
            call = next(exchange)
            while True:
                try:
                    answer = self._send(call)
                except ClientError as exc:
                    call = exchange.throw(exc)
                else:
                    call = exchange.send(answer)
        except StopIteration as stop:
            return cast(T, _done(stop))

    def health(self) -> dict[str, Any]:
        """``GET /health`` (no token needed)."""
        return self._run(op.health())

    def whoami(self) -> str:
        """The role of this client's token: ``operator`` or ``admin``."""
        return self._run(op.whoami())

    def spawn_agent(self, request: SpawnBody) -> SpawnAccepted:
        """Queue a task; the answer names its agent."""
        return self._run(op.spawn_agent(request))

    def check(self, request: SpawnBody) -> PreCheck:
        """Whether the task could run now (``POST /agents/check``); queues nothing."""
        return self._run(op.check(request))

    def dispatch(
        self,
        requests: Iterable[SpawnBody],
        *,
        precheck: bool = True,
        on_each: OnDispatched | None = None,
    ) -> list[Dispatched]:
        """Queue each task that passes its pre-check (``mosaic.exchanges.dispatch``)."""
        return self._run(op.dispatch(requests, precheck, on_each))

    def get_agent_status(self, agent_id: str) -> AgentRecord:
        """One agent's record."""
        return self._run(op.agent_status(agent_id))

    def get_agent_events(self, agent_id: str) -> list[AgentEvent]:
        """One agent's stored event history, in order."""
        return self._run(op.agent_events(agent_id))

    def get_agent_trace(self, agent_id: str) -> AgentTrace:
        """The agent's task trace: its spans across the services, by start time."""
        return self._run(op.agent_trace(agent_id))

    def list_agents(
        self, state: str | None = None, task_id: str | None = None, offset: int = 0, limit: int = 50
    ) -> AgentList:
        """A page of agents, newest first, optionally filtered."""
        return self._run(op.list_agents(state, task_id, offset, limit))

    def kill_agent(self, agent_id: str) -> KillResult:
        """Kill one agent; answers once it is final (or the gateway's wait ran out)."""
        return self._run(op.kill_agent(agent_id))

    def kill_all_agents(self) -> list[KillResult]:
        """Kill every live agent (needs the admin token)."""
        return self._run(op.kill_all_agents())

    def queue_stats(self) -> dict[str, Any]:
        """``GET /queue``: waiting and in-flight tasks per priority, counts per state."""
        return self._run(op.queue_stats())

    def hold_status(self) -> HoldStatus:
        """``GET /agents/hold``: the hold in force, if any."""
        return self._run(op.hold_status())

    def resume(self) -> HoldStatus:
        """``POST /agents/resume``: lift a hold (admin token); the hold after it."""
        return self._run(op.resume())

    def audit(
        self, kind: str | None = None, agent_id: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """``GET /audit``: audited acts, newest first."""
        return self._run(op.audit(kind, agent_id, limit))

    def quality_check(self, body: Mapping[str, Any]) -> GateDecision:
        """``POST /api/quality/check``: run a gate profile on a worktree or an agent's."""
        return self._run(op.quality_check(body))

    def events(
        self, agent_id: str | None = None, since: int | None = None, *, reconnect: bool = True
    ) -> Iterator[AgentEvent]:
        """Live events over SSE, forever (break out to stop); see ``FeedCursor`` for how
        a dropped connection resumes."""
        cursor = FeedCursor(agent_id, since, reconnect, self._delay)
        while True:
            try:
                with self._http.stream(
                    "GET",
                    FEED_PATH,
                    params=cursor.params(),
                    headers=FEED_HEADERS,
                    timeout=self._feed_timeout(),
                ) as response:
                    if not response.is_success:
                        response.read()
                        raise error_for(response)
                    cursor.connected()
                    yield from cursor.events(response.iter_lines())
            except (httpx.TransportError, UnavailableError) as exc:
                time.sleep(cursor.lost(exc))
                continue
            if not reconnect:
                return


class AsyncMosaicClient(_Base):
    """The same API for asyncio code."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout=timeout, retries=retries, backoff=backoff)
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection pool."""
        await self._http.aclose()

    async def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            error: httpx.TransportError | None = None
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.body
                )
            except httpx.TransportError as exc:
                error = exc
            if response is not None and response.is_success:
                return response.json()
            await asyncio.sleep(self._retry_after(attempt, response, error))
            attempt += 1

    async def _run(self, exchange: Exchange[T]) -> T:
        try:
            call = next(exchange)
            while True:
                try:
                    answer = await self._send(call)
                except ClientError as exc:
                    call = exchange.throw(exc)
                else:
                    call = exchange.send(answer)
        except StopIteration as stop:
            return cast(T, _done(stop))

    async def health(self) -> dict[str, Any]:
        """``MosaicClient.health``."""
        return await self._run(op.health())

    async def whoami(self) -> str:
        """``MosaicClient.whoami``."""
        return await self._run(op.whoami())

    async def spawn_agent(self, request: SpawnBody) -> SpawnAccepted:
        """``MosaicClient.spawn_agent``."""
        return await self._run(op.spawn_agent(request))

    async def check(self, request: SpawnBody) -> PreCheck:
        """``MosaicClient.check``."""
        return await self._run(op.check(request))

    async def dispatch(
        self,
        requests: Iterable[SpawnBody],
        *,
        precheck: bool = True,
        on_each: OnDispatched | None = None,
    ) -> list[Dispatched]:
        """``MosaicClient.dispatch`` (one task after another)."""
        return await self._run(op.dispatch(requests, precheck, on_each))

    async def get_agent_status(self, agent_id: str) -> AgentRecord:
        """``MosaicClient.get_agent_status``."""
        return await self._run(op.agent_status(agent_id))

    async def get_agent_events(self, agent_id: str) -> list[AgentEvent]:
        """``MosaicClient.get_agent_events``."""
        return await self._run(op.agent_events(agent_id))

    async def get_agent_trace(self, agent_id: str) -> AgentTrace:
        """``MosaicClient.get_agent_trace``."""
        return await self._run(op.agent_trace(agent_id))

    async def list_agents(
        self, state: str | None = None, task_id: str | None = None, offset: int = 0, limit: int = 50
    ) -> AgentList:
        """``MosaicClient.list_agents``."""
        return await self._run(op.list_agents(state, task_id, offset, limit))

    async def kill_agent(self, agent_id: str) -> KillResult:
        """``MosaicClient.kill_agent``."""
        return await self._run(op.kill_agent(agent_id))

    async def kill_all_agents(self) -> list[KillResult]:
        """``MosaicClient.kill_all_agents``."""
        return await self._run(op.kill_all_agents())

    async def queue_stats(self) -> dict[str, Any]:
        """``MosaicClient.queue_stats``."""
        return await self._run(op.queue_stats())

    async def hold_status(self) -> HoldStatus:
        """``MosaicClient.hold_status``."""
        return await self._run(op.hold_status())

    async def resume(self) -> HoldStatus:
        """``MosaicClient.resume``."""
        return await self._run(op.resume())

    async def audit(
        self, kind: str | None = None, agent_id: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """``MosaicClient.audit``."""
        return await self._run(op.audit(kind, agent_id, limit))

    async def quality_check(self, body: Mapping[str, Any]) -> GateDecision:
        """``MosaicClient.quality_check``."""
        return await self._run(op.quality_check(body))

    async def events(
        self, agent_id: str | None = None, since: int | None = None, *, reconnect: bool = True
    ) -> AsyncGenerator[AgentEvent, None]:
        """``MosaicClient.events`` for asyncio code."""
        cursor = FeedCursor(agent_id, since, reconnect, self._delay)
        while True:
            try:
                async with self._http.stream(
                    "GET",
                    FEED_PATH,
                    params=cursor.params(),
                    headers=FEED_HEADERS,
                    timeout=self._feed_timeout(),
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        raise error_for(response)
                    cursor.connected()
                    async for line in response.aiter_lines():
                        for event in cursor.events([line]):
                            yield event
            except (httpx.TransportError, UnavailableError) as exc:
                await asyncio.sleep(cursor.lost(exc))
                continue
            if not reconnect:
                return
