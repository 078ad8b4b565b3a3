"""Accepting a task: record it, queue it durably, or leave nothing behind."""

from __future__ import annotations

import logging
import uuid

from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind

from services.gateway.errors import InvalidInputError
from shared import subjects, tracing
from shared.bus import request as ask
from shared.errors import BusUnavailableError, MosaicError
from shared.messages.agents import AgentEvent, AgentRecord, AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.checks import RepositoryPathFound, RepositoryPathRequested
from shared.messages.tasks import SpawnAgentRequest, TaskQueued
from shared.queue import publish_task
from shared.repository import local_path
from shared.spawners import NoSpawnerReadyError, SpawnerRegistry, why_not_ready
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


class RepositoryMissingError(InvalidInputError):
    """A local repository path that does not exist (known before queueing)."""


class BudgetHoldError(MosaicError):
    """The deployment's daily budget is spent: no task is accepted until an admin's
    resume or the next UTC day (503, nothing stored)."""

    code = "budget_exhausted"
    retryable = True


def new_agent_id() -> str:
    """A short random id, safe in subjects, paths and branch names."""
    return uuid.uuid4().hex[:16]


async def _require_directory(broker: NatsBroker, path: str, timeout: float) -> None:
    """Ask gitops (any host's: the gateway reads no disk) whether a local repository path
    exists; ``RepositoryMissingError`` when it does not, ``BusUnavailableError`` (503, not
    accepted) when no gitops answers: a path nobody could check is not taken on trust."""
    try:
        found = await ask(
            broker,
            subjects.GITOPS_REPOSITORY_EXISTS,
            RepositoryPathRequested(path=path),
            RepositoryPathFound,
            timeout,
        )
    except BusUnavailableError as exc:
        raise BusUnavailableError(
            f"could not check the repository path {path}: no gitops answered ({exc.message}); "
            "task not accepted"
        ) from exc
    if found.error is not None:
        raise RepositoryMissingError("context.repository", found.error.message)
    if not found.exists:
        where = f" on host {found.host}" if found.host else ""
        raise RepositoryMissingError("context.repository", f"no repository at {path}{where}")


async def submit(
    request: SpawnAgentRequest,
    *,
    tracker: AgentTracker,
    js: JetStreamContext,
    broker: NatsBroker,
    default_profile: str,
    yolo: bool,
    spawners: SpawnerRegistry,
    trace_ttl_s: int = 7 * 24 * 3600,
    path_timeout_s: float = 10.0,
) -> tuple[AgentRecord, bool]:
    """Store and queue a task; returns (record, created). A known task id is not re-queued.

    Raises ``BudgetHoldError`` (503, nothing stored) while the deployment's daily budget
    holds intake (a kill-all's hold queues the task: it waits for the resume). Raises
    ``NoSpawnerReadyError`` (503, nothing stored) when spawners run but none can
    run an agent (no sandbox, no model): queueing would only hide the reason. With no
    spawner registered at all the task is queued and waits for one.

    A created task starts its trace here: the root span (``spawn``) is current while the
    task is queued, so its context rides in the task message's headers, and its
    ``traceparent`` is kept for ``trace_ttl_s`` (a kill continues the trace).
    """
    if not broker.connection.is_connected:  # never 202 for a task JetStream may not store
        raise BusUnavailableError("task queue unavailable (NATS disconnected); task not accepted")
    store = tracker.store
    try:
        existing = await store.agent_for_task(request.task_id)
        if existing is not None:
            return await store.require_agent(existing), False
        hold = await store.held()
        if hold is not None and hold.get("kind") == "budget":
            raise BudgetHoldError(
                f"not accepted: intake is held, the deployment's {hold.get('reason')}; an "
                "admin's POST /agents/resume or the next UTC day lifts it"
            )
        problem = why_not_ready(await spawners.live())
        if problem is not None:
            raise NoSpawnerReadyError(problem)
        # after readiness: with no spawner able to run, that is the reason to name
        path = local_path(request.context.repository)
        if path is not None:
            await _require_directory(broker, path, path_timeout_s)
        record = AgentRecord(
            agent_id=new_agent_id(),
            task_id=request.task_id,
            agent_type=request.agent_type,
            state=AgentState.SPAWNING,
            task_state=TaskState.PENDING,
            repository=request.context.repository,
            branch=request.context.branch,
            priority=request.priority,
            gate_profile=request.gate_profile or default_profile,
            created_at=utcnow(),
            quality_gates_disabled=yolo,
        )
        agent_id, created = await store.create_agent(record)
    except OSError as exc:  # redis ConnectionError derives from it
        raise BusUnavailableError(f"state store unavailable: {exc}") from exc
    if not created:
        return await store.require_agent(agent_id), False
    # The creation event goes into the history before the task is queued, so it is
    # seq 1 even when a spawner picks the task up at once; it is published afterwards.
    with tracing.span(
        "spawn",
        kind=SpanKind.SERVER,
        agent_id=record.agent_id,
        task_id=record.task_id,
        attributes={
            "mosaic.agent_type": record.agent_type,
            "mosaic.priority": record.priority,
            "mosaic.gate_profile": record.gate_profile,
        },
    ):
        try:
            traceparent = tracing.current_traceparent()
            if traceparent is not None:
                await store.set_agent_trace(record.agent_id, traceparent, trace_ttl_s)
            event = await store.append_event(
                AgentEvent(
                    agent_id=record.agent_id,
                    task_id=record.task_id,
                    kind="state",
                    state="spawning",
                    detail={"taskState": "pending"},
                    trace_id=tracing.current_trace_id(),
                )
            )
            await publish_task(js, TaskQueued(agent_id=record.agent_id, request=request))
        except Exception as exc:
            await _forget(tracker, record)
            raise BusUnavailableError(f"task queue unavailable, task not accepted: {exc}") from exc
    await tracker.announce(event)
    log.info(
        "queued task %s as agent %s",
        request.task_id,
        record.agent_id,
        extra={"agent_id": record.agent_id, "task_id": request.task_id},
    )
    return record, True


async def _forget(tracker: AgentTracker, record: AgentRecord) -> None:
    try:
        await tracker.store.delete_agent(record.agent_id, record.task_id)
    except Exception:
        log.exception("could not remove the record of unqueued task %s", record.task_id)
