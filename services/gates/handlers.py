"""Thin handlers: decode the request, decide, answer."""

from __future__ import annotations

from faststream.nats import NatsBroker

from services.gates.logic import decide
from shared import subjects
from shared.messages.gates import GateCheckRequested, GateDecision


def register(broker: NatsBroker) -> None:
    """Attach the gates handlers to ``broker``."""

    @broker.subscriber(subjects.GATES_CHECK, queue=subjects.GATES_QUEUE)
    async def check(request: GateCheckRequested) -> GateDecision:
        return await decide(request)
