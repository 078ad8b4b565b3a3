"""Accepting a task: record it, queue it durably, or leave nothing behind."""

from __future__ import annotations

import logging
import uuid

from opentelemetry.trace import SpanKind

from services.gateway.deps import Resources
from shared import tracing
from shared.errors import BusUnavailableError, MosaicError
from shared.messages.agents import AgentEvent, AgentRecord, AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.tasks import SpawnAgentRequest, TaskQueued
from shared.queue import publish_task
from shared.repository import local_path
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


class BudgetHoldError(MosaicError):
    """The deployment's daily budget is spent: no task is accepted until an admin's
    resume or the next UTC day (503, nothing stored)."""

    code = "budget_exhausted"
    retryable = True


def new_agent_id() -> str:
    """A short random id, safe in subjects, paths and branch names."""
    return uuid.uuid4().hex[:16]


async def submit(
    request: SpawnAgentRequest, deps: Resources, *, trace_ttl_s: int | None = None
) -> tuple[AgentRecord, bool]:
    """Store and queue a task; returns (record, created). A known task id is not re-queued.

    Raises ``BudgetHoldError`` (503, nothing stored) while the deployment's daily budget
    holds intake (a kill-all's hold queues the task: it waits for the resume). Raises
    ``NoSpawnerReadyError`` (503, nothing stored) when spawners run but none can
    run an agent (no sandbox, no model): queueing would only hide the reason. With no
    spawner registered at all the task is queued and waits for one.

    A created task starts its trace here: the root span (``spawn``) is current while the
    task is stored and queued, so its context rides in the task message's headers, and
    its ``traceparent`` is kept for ``trace_ttl_s`` (a kill continues the trace). The
    record, its first event and the trace context are one store write.
    """
    if not deps.broker.connection.is_connected:  # never 202 for a task JetStream may lose
        raise BusUnavailableError("task queue unavailable (NATS disconnected); task not accepted")
    store = deps.tracker.store
    try:
        existing, hold = await store.intake(request.task_id)
        if existing is not None:
            return await store.require_agent(existing), False
        if hold is not None and hold.get("kind") == "budget":
            raise BudgetHoldError(
                f"not accepted: intake is held, the deployment's {hold.get('reason')}; an "
                "admin's POST /agents/resume or the next UTC day lifts it"
            )
        await deps.intake.require_ready()
        # after readiness: with no spawner able to run, that is the reason to name
        path = local_path(request.context.repository)
        if path is not None:
            await deps.intake.require_repository(path)
        record = AgentRecord(
            agent_id=new_agent_id(),
            task_id=request.task_id,
            agent_type=request.agent_type,
            state=AgentState.SPAWNING,
            task_state=TaskState.PENDING,
            repository=request.context.repository,
            branch=request.context.branch,
            priority=request.priority,
            gate_profile=request.gate_profile or deps.quality.default_gate_profile,
            created_at=utcnow(),
            quality_gates_disabled=deps.quality.yolo_mode,
        )
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
            # The creation event is seq 1 of the history before the task is queued, even
            # when a spawner picks the task up at once; it is published afterwards.
            event = AgentEvent(
                agent_id=record.agent_id,
                task_id=record.task_id,
                kind="state",
                state="spawning",
                detail={"taskState": "pending"},
                trace_id=tracing.current_trace_id(),
                seq=1,
            )
            agent_id, created = await store.create_agent(
                record,
                first_event=event,
                traceparent=tracing.current_traceparent(),
                trace_ttl_s=trace_ttl_s or deps.settings.trace_ttl_s,
            )
            if not created:
                return await store.require_agent(agent_id), False
            try:
                await publish_task(deps.js, TaskQueued(agent_id=record.agent_id, request=request))
            except Exception as exc:
                await _forget(deps.tracker, record)
                raise BusUnavailableError(
                    f"task queue unavailable, task not accepted: {exc}"
                ) from exc
    except OSError as exc:  # redis ConnectionError derives from it
        raise BusUnavailableError(f"state store unavailable: {exc}") from exc
    await deps.tracker.announce(event)
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
