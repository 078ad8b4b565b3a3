"""Thin handlers: decode the request, decide, answer."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from services.gates.logic import GateChecker
from shared import subjects, tracing
from shared.messages.base import Failure
from shared.messages.gates import GateCheckRequested, GateDecision

log = logging.getLogger(__name__)


def register(broker: NatsBroker, checker: GateChecker, concurrency: int, host: str) -> None:
    """Attach the gates handlers to ``broker``; ``checker`` decides. A check runs in an
    agent's worktree, so it is asked of the agent's host: ``mosaic.gates.<host>.check``."""

    @broker.subscriber(
        subjects.gates_check(host), queue=subjects.gates_queue(host), max_workers=concurrency
    )
    async def check(request: GateCheckRequested, message: NatsMessage) -> GateDecision:
        with tracing.serving(
            "gates.check",
            message.headers,
            agent_id=request.agent_id,
            task_id=request.task_id,
            attributes={
                "mosaic.gates.phase": request.phase,
                "mosaic.gates.profile": request.profile,
            },
        ) as span:
            decision = await _decide(checker, request)
            span.set_attribute("mosaic.gates.approved", decision.approved)
            return decision


async def _decide(checker: GateChecker, request: GateCheckRequested) -> GateDecision:
    try:
        return await checker.decide(request)
    except Exception as exc:  # an answer is always better than a timeout
        log.exception(
            "gate check crashed",
            extra={"agent_id": request.agent_id, "task_id": request.task_id},
        )
        failure = Failure(code="gates_internal", message=f"gates failed: {exc}", retryable=True)
        return GateDecision(approved=False, yolo=request.yolo, error=failure)
