"""A Python client of the gateway's HTTP API (sync ``MosaicClient``, async
``AsyncMosaicClient``), with bounded retries on 503 and typed errors.

    with MosaicClient("http://127.0.0.1:3001", token) as mosaic:
        spawned = mosaic.spawn_agent(request)
        for event in mosaic.events(agent_id=spawned.agent_id):
            ...
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx
from pydantic import ConfigDict

from mosaic import batch
from mosaic.batch import Dispatched
from shared.backoff import backoff_delay
from shared.messages.agents import AgentEvent, AgentRecord
from shared.messages.audit import AuditEntry
from shared.messages.base import CamelModel
from shared.messages.checks import PreCheck
from shared.messages.gates import GateDecision
from shared.messages.tasks import SpawnAgentRequest
from shared.messages.traces import AgentTrace

DEFAULT_URL = "http://127.0.0.1:3001"

SpawnBody = SpawnAgentRequest | Mapping[str, Any]
OnDispatched = Callable[[Dispatched], None]
"""Called after each task of a ``dispatch`` (a progress bar)."""


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


class _Answer(CamelModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Spawned(_Answer):
    """The agent that runs the task; ``duplicate`` when the task id was already known."""

    agent_id: str
    task_id: str
    state: str
    task_state: str
    duplicate: bool = False


class AgentPage(_Answer):
    """A page of agents, newest first."""

    agents: list[AgentRecord]
    total: int
    offset: int
    limit: int


class KillOutcome(_Answer):
    """What a kill achieved by the time the gateway answered."""

    agent_id: str
    state: str
    killed: bool
    elapsed_ms: float


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    body: Any = None


def _spawn_body(request: SpawnBody) -> Any:
    if isinstance(request, SpawnAgentRequest):
        return request.model_dump(mode="json", exclude_none=True)
    return dict(request)


def _list_params(
    state: str | None, task_id: str | None, offset: int, limit: int
) -> dict[str, str | int]:
    params: dict[str, str | int] = {"offset": offset, "limit": limit}
    if state:
        params["state"] = state
    if task_id:
        params["taskId"] = task_id
    return params


def _audit_params(kind: str | None, agent_id: str | None, limit: int) -> dict[str, str | int]:
    params: dict[str, str | int] = {"limit": limit}
    if kind:
        params["kind"] = kind
    if agent_id:
        params["agentId"] = agent_id
    return params


def _feed_params(agent_id: str | None, since: int | None) -> dict[str, str | int]:
    params: dict[str, str | int] = {}
    if agent_id:
        params["agentId"] = agent_id
    if since is not None:
        params["since"] = since
    return params


class SseParser:
    """Turns the lines of a ``text/event-stream`` into ``(event, data, id)`` triples."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id = ""

    def feed(self, line: str) -> tuple[str, str, str] | None:
        """One line in; a complete message out when the line ends one."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            message = (self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], ""
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


def _events_from(lines: Iterable[str], parser: SseParser) -> Iterator[AgentEvent]:
    for line in lines:
        message = parser.feed(line)
        if message is None:
            continue
        kind, data, _ = message
        if kind == "agent":
            yield AgentEvent.model_validate_json(data)
        elif kind == "dropped":
            raise UnavailableError(0, "the gateway dropped this feed: " + data, code="too_slow")


class _Base:
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

    def _delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before the next attempt, or None when retries are spent."""
        if attempt >= self.retries:
            return None
        delay = backoff_delay(attempt + 1, base=self.backoff, cap=5.0, jitter=0.25)
        after = str(response.headers.get("retry-after", "")) if response is not None else ""
        if after.isdigit():
            delay = max(delay, min(float(after), 10.0))
        return delay


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

    def _send(self, call: _Call) -> Any:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, json=call.body
                )
            except httpx.TransportError as exc:
                failure: ClientError = UnavailableError(0, f"cannot reach {self.url}: {exc}")
            else:
                if response.is_success:
                    return response.json()
                failure = error_for(response)
                if response.status_code != 503 or failure.code in NOT_TRANSIENT:
                    raise failure
            delay = self._delay(attempt, response)
            if delay is None:
                raise failure
            time.sleep(delay)
            attempt += 1

    def health(self) -> dict[str, Any]:
        """``GET /health`` (no token needed)."""
        answer: dict[str, Any] = self._send(_Call("GET", "/health"))
        return answer

    def whoami(self) -> str:
        """The role of this client's token: ``operator`` or ``admin``."""
        return str(self._send(_Call("GET", "/auth/whoami"))["role"])

    def spawn_agent(self, request: SpawnAgentRequest | Mapping[str, Any]) -> Spawned:
        """Queue a task; the answer names its agent."""
        return Spawned.model_validate(
            self._send(_Call("POST", "/agents/spawn", None, _spawn_body(request)))
        )

    def check(self, request: SpawnBody) -> PreCheck:
        """Whether the task could run now (``POST /agents/check``); queues nothing."""
        return PreCheck.model_validate(
            self._send(_Call("POST", "/agents/check", None, _spawn_body(request)))
        )

    def dispatch(
        self,
        requests: Iterable[SpawnBody],
        *,
        precheck: bool = True,
        on_each: OnDispatched | None = None,
    ) -> list[Dispatched]:
        """Queue each task that passes its pre-check; per task, queued (its agent) or
        refused (why). A refused task is never queued; one task's refusal (bad input,
        a failed check, a 503) does not stop the others; a gateway that does not answer
        at all (after the retries) does: the tasks after it are refused unsent."""
        run = batch.Run(on_each)
        for request in requests:
            task_id = batch.task_id_of(request)
            if run.unsent(task_id):
                continue
            try:
                verdict = self.check(request) if precheck else None
                if verdict is not None and not verdict.ok:
                    run.add(batch.refused_by_check(task_id, verdict))
                    continue
                answer = self.spawn_agent(request)
            except ClientError as exc:
                run.refused(task_id, str(exc), field=exc.field, answered=exc.status != 0)
                continue
            run.add(batch.spawned(answer, verdict))
        return run.out

    def get_agent_status(self, agent_id: str) -> AgentRecord:
        """One agent's record."""
        return AgentRecord.model_validate(self._send(_Call("GET", f"/agents/{agent_id}/status")))

    def get_agent_events(self, agent_id: str) -> list[AgentEvent]:
        """One agent's stored event history, in order."""
        raw = self._send(_Call("GET", f"/agents/{agent_id}/events"))
        return [AgentEvent.model_validate(e) for e in raw]

    def get_agent_trace(self, agent_id: str) -> AgentTrace:
        """The agent's task trace: its spans across the services, by start time."""
        return AgentTrace.model_validate(self._send(_Call("GET", f"/agents/{agent_id}/trace")))

    def list_agents(
        self,
        state: str | None = None,
        task_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> AgentPage:
        """A page of agents, newest first, optionally filtered."""
        params = _list_params(state, task_id, offset, limit)
        return AgentPage.model_validate(self._send(_Call("GET", "/agents", params)))

    def kill_agent(self, agent_id: str) -> KillOutcome:
        """Kill one agent; answers once it is final (or the gateway's wait ran out)."""
        return KillOutcome.model_validate(self._send(_Call("POST", f"/agents/{agent_id}/kill")))

    def kill_all_agents(self) -> list[KillOutcome]:
        """Kill every live agent (needs the admin token)."""
        raw = self._send(_Call("POST", "/agents/kill-all"))
        return [KillOutcome.model_validate(k) for k in raw]

    def queue_stats(self) -> dict[str, Any]:
        """``GET /queue``: waiting and in-flight tasks per priority, counts per state."""
        answer: dict[str, Any] = self._send(_Call("GET", "/queue"))
        return answer

    def hold_status(self) -> dict[str, Any]:
        """``GET /agents/hold``: the kill-all in force, if any."""
        answer: dict[str, Any] = self._send(_Call("GET", "/agents/hold"))
        return answer

    def resume(self) -> dict[str, Any]:
        """``POST /agents/resume``: lift a kill-all (admin token); the hold after it."""
        answer: dict[str, Any] = self._send(_Call("POST", "/agents/resume"))
        return answer

    def audit(
        self, kind: str | None = None, agent_id: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """``GET /audit``: audited acts, newest first."""
        raw = self._send(_Call("GET", "/audit", _audit_params(kind, agent_id, limit)))
        return [AuditEntry.model_validate(e) for e in raw]

    def quality_check(self, body: Mapping[str, Any]) -> GateDecision:
        """``POST /api/quality/check``: run a gate profile on a worktree or an agent's."""
        return GateDecision.model_validate(
            self._send(_Call("POST", "/api/quality/check", None, dict(body)))
        )

    def events(
        self, agent_id: str | None = None, since: int | None = None, *, reconnect: bool = True
    ) -> Iterator[AgentEvent]:
        """Live events over SSE, forever (break out to stop).

        With ``agent_id`` a reconnect resumes after the last ``seq`` seen, so nothing is
        lost or repeated; without it, events during a reconnect are missed.
        """
        attempt = 0
        while True:
            try:
                with self._http.stream(
                    "GET",
                    "/events/stream",
                    params=_feed_params(agent_id, since),
                    headers={"Accept": "text/event-stream"},
                    timeout=httpx.Timeout(self.timeout, read=None),
                ) as response:
                    if not response.is_success:
                        response.read()
                        raise error_for(response)
                    attempt = 0
                    for event in _events_from(response.iter_lines(), SseParser()):
                        if agent_id is not None:
                            since = event.seq
                        yield event
            except (httpx.TransportError, UnavailableError) as exc:
                if not reconnect:
                    raise UnavailableError(0, f"feed lost: {exc}") from exc
                delay = self._delay(attempt, None)
                if delay is None:
                    raise UnavailableError(0, f"feed lost: {exc}") from exc
                time.sleep(delay)
                attempt += 1
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

    async def _send(self, call: _Call) -> Any:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.body
                )
            except httpx.TransportError as exc:
                failure: ClientError = UnavailableError(0, f"cannot reach {self.url}: {exc}")
            else:
                if response.is_success:
                    return response.json()
                failure = error_for(response)
                if response.status_code != 503 or failure.code in NOT_TRANSIENT:
                    raise failure
            delay = self._delay(attempt, response)
            if delay is None:
                raise failure
            await asyncio.sleep(delay)
            attempt += 1

    async def health(self) -> dict[str, Any]:
        """``GET /health`` (no token needed)."""
        answer: dict[str, Any] = await self._send(_Call("GET", "/health"))
        return answer

    async def whoami(self) -> str:
        """The role of this client's token: ``operator`` or ``admin``."""
        return str((await self._send(_Call("GET", "/auth/whoami")))["role"])

    async def spawn_agent(self, request: SpawnAgentRequest | Mapping[str, Any]) -> Spawned:
        """Queue a task; the answer names its agent."""
        raw = await self._send(_Call("POST", "/agents/spawn", None, _spawn_body(request)))
        return Spawned.model_validate(raw)

    async def check(self, request: SpawnBody) -> PreCheck:
        """Whether the task could run now (``POST /agents/check``); queues nothing."""
        raw = await self._send(_Call("POST", "/agents/check", None, _spawn_body(request)))
        return PreCheck.model_validate(raw)

    async def dispatch(
        self,
        requests: Iterable[SpawnBody],
        *,
        precheck: bool = True,
        on_each: OnDispatched | None = None,
    ) -> list[Dispatched]:
        """``MosaicClient.dispatch`` for asyncio code (one task after another)."""
        run = batch.Run(on_each)
        for request in requests:
            task_id = batch.task_id_of(request)
            if run.unsent(task_id):
                continue
            try:
                verdict = await self.check(request) if precheck else None
                if verdict is not None and not verdict.ok:
                    run.add(batch.refused_by_check(task_id, verdict))
                    continue
                answer = await self.spawn_agent(request)
            except ClientError as exc:
                run.refused(task_id, str(exc), field=exc.field, answered=exc.status != 0)
                continue
            run.add(batch.spawned(answer, verdict))
        return run.out

    async def get_agent_status(self, agent_id: str) -> AgentRecord:
        """One agent's record."""
        raw = await self._send(_Call("GET", f"/agents/{agent_id}/status"))
        return AgentRecord.model_validate(raw)

    async def get_agent_events(self, agent_id: str) -> list[AgentEvent]:
        """One agent's stored event history, in order."""
        raw = await self._send(_Call("GET", f"/agents/{agent_id}/events"))
        return [AgentEvent.model_validate(e) for e in raw]

    async def get_agent_trace(self, agent_id: str) -> AgentTrace:
        """The agent's task trace: its spans across the services, by start time."""
        raw = await self._send(_Call("GET", f"/agents/{agent_id}/trace"))
        return AgentTrace.model_validate(raw)

    async def list_agents(
        self,
        state: str | None = None,
        task_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> AgentPage:
        """A page of agents, newest first, optionally filtered."""
        params = _list_params(state, task_id, offset, limit)
        return AgentPage.model_validate(await self._send(_Call("GET", "/agents", params)))

    async def kill_agent(self, agent_id: str) -> KillOutcome:
        """Kill one agent; answers once it is final (or the gateway's wait ran out)."""
        raw = await self._send(_Call("POST", f"/agents/{agent_id}/kill"))
        return KillOutcome.model_validate(raw)

    async def kill_all_agents(self) -> list[KillOutcome]:
        """Kill every live agent (needs the admin token)."""
        raw = await self._send(_Call("POST", "/agents/kill-all"))
        return [KillOutcome.model_validate(k) for k in raw]

    async def queue_stats(self) -> dict[str, Any]:
        """``GET /queue``: waiting and in-flight tasks per priority, counts per state."""
        answer: dict[str, Any] = await self._send(_Call("GET", "/queue"))
        return answer

    async def hold_status(self) -> dict[str, Any]:
        """``GET /agents/hold``: the kill-all in force, if any."""
        answer: dict[str, Any] = await self._send(_Call("GET", "/agents/hold"))
        return answer

    async def resume(self) -> dict[str, Any]:
        """``POST /agents/resume``: lift a kill-all (admin token); the hold after it."""
        answer: dict[str, Any] = await self._send(_Call("POST", "/agents/resume"))
        return answer

    async def audit(
        self, kind: str | None = None, agent_id: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """``GET /audit``: audited acts, newest first."""
        raw = await self._send(_Call("GET", "/audit", _audit_params(kind, agent_id, limit)))
        return [AuditEntry.model_validate(e) for e in raw]

    async def quality_check(self, body: Mapping[str, Any]) -> GateDecision:
        """``POST /api/quality/check``: run a gate profile on a worktree or an agent's."""
        return GateDecision.model_validate(
            await self._send(_Call("POST", "/api/quality/check", None, dict(body)))
        )

    async def events(
        self, agent_id: str | None = None, since: int | None = None, *, reconnect: bool = True
    ) -> AsyncGenerator[AgentEvent, None]:
        """Live events over SSE (see ``MosaicClient.events``)."""
        attempt = 0
        while True:
            try:
                async with self._http.stream(
                    "GET",
                    "/events/stream",
                    params=_feed_params(agent_id, since),
                    headers={"Accept": "text/event-stream"},
                    timeout=httpx.Timeout(self.timeout, read=None),
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        raise error_for(response)
                    attempt = 0
                    parser = SseParser()
                    async for line in response.aiter_lines():
                        for event in _events_from([line], parser):
                            if agent_id is not None:
                                since = event.seq
                            yield event
            except (httpx.TransportError, UnavailableError) as exc:
                if not reconnect:
                    raise UnavailableError(0, f"feed lost: {exc}") from exc
                delay = self._delay(attempt, None)
                if delay is None:
                    raise UnavailableError(0, f"feed lost: {exc}") from exc
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if not reconnect:
                return
