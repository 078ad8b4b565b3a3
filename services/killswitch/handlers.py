"""Raw core-NATS callbacks: read the order leniently, act, audit, answer if asked.

The order is acted on before anything is written to the audit trail, and the audit
write never delays or blocks a kill.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind

from services.killswitch.logic import Killswitch, Outcome
from shared import subjects, tracing
from shared.audit import KIND_KILL, KIND_KILL_ALL
from shared.messages.audit import AuditEntry
from shared.messages.kill import KillOrdered, KillReport

log = logging.getLogger(__name__)

WriteAudit = Callable[[AuditEntry], Awaitable[object]]
Handler = Callable[[Msg], Awaitable[None]]


class KillHandlers:
    """The killswitch's subscriptions' callbacks."""

    def __init__(self, ks: Killswitch, write_audit: WriteAudit, responder: str) -> None:
        self.ks = ks
        self._write_audit = write_audit
        self.responder = responder
        self._background: set[asyncio.Task[None]] = set()

    def concurrently(self, handler: Callable[[Msg], Awaitable[None]]) -> Handler:
        """A callback that runs ``handler`` in its own task: NATS delivers a subscription's
        messages one after another, and one kill's grace must not delay the next."""

        async def cb(msg: Msg) -> None:
            self._spawn(handler(msg))

        return cb

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("kill handler failed")

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def on_kill_one(self, msg: Msg) -> None:
        """``mosaic.kill.agent.<id>``."""
        received = time.monotonic()
        agent_id = msg.subject[len(subjects.KILL_AGENT_PREFIX) + 1 :]
        order = KillOrdered.lenient(msg.data)
        # A span of the agent's trace when the order carried its context (the gateway's
        # kill does): what the killswitch did, and its cleanup requests, join the task.
        with tracing.serving(
            "killswitch.kill", msg.headers, kind=SpanKind.CONSUMER, agent_id=agent_id
        ) as span:
            outcome = await self.ks.kill_one(agent_id, order, received)
            if outcome.by == "elsewhere":  # another host's killswitch answers and audits
                span.set_attribute("mosaic.kill.by", "elsewhere")
                return
            span.set_attributes(
                {
                    "mosaic.kill.by": outcome.by,
                    "mosaic.kill.state": outcome.state.value if outcome.state else "unknown",
                }
            )
        log.warning(
            "kill of %s: %s by %s in %.0f ms (reason: %s)",
            agent_id,
            outcome.state,
            outcome.by,
            outcome.elapsed_s * 1000,
            order.reason,
            extra={"agent_id": agent_id},
        )
        await self._reply(msg, [outcome])
        self._audit(
            AuditEntry(
                kind=KIND_KILL,
                actor=order.requested_by or "nats",
                reason=order.reason or "",
                agent_id=agent_id,
                detail={"subject": msg.subject, "host": self.ks.host, **_describe([outcome])},
            )
        )

    async def on_kill_all(self, msg: Msg) -> None:
        """``mosaic.kill.all``."""
        received = time.monotonic()
        order = KillOrdered.lenient(msg.data)
        outcomes = await self.ks.kill_all(order, received)
        log.warning(
            "kill-all: %d agent(s) ended in %.0f ms; queue held until resume (reason: %s)",
            sum(o.killed for o in outcomes),
            (time.monotonic() - received) * 1000,
            order.reason,
        )
        await self._reply(msg, outcomes)
        self._audit(
            AuditEntry(
                kind=KIND_KILL_ALL,
                actor=order.requested_by or "nats",
                reason=order.reason or "",
                detail={"subject": msg.subject, "host": self.ks.host, **_describe(outcomes)},
            )
        )

    async def _reply(self, msg: Msg, outcomes: list[Outcome]) -> None:
        if not msg.reply:
            return
        report = KillReport(
            killed=tuple(o.agent_id for o in outcomes if o.killed), responder=self.responder
        )
        try:
            await msg.respond(report.to_bytes())
        except Exception:
            log.warning("could not answer a kill order", exc_info=True)

    def _audit(self, entry: AuditEntry) -> None:
        async def write() -> None:
            try:
                await self._write_audit(entry)
            except Exception:
                log.exception("could not write the audit entry %s (%s)", entry.id, entry.kind)

        self._spawn(write())

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for kills and audit writes still under way."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)


def _describe(outcomes: list[Outcome]) -> dict[str, object]:
    return {
        "killed": [o.agent_id for o in outcomes if o.killed],
        "bySpawner": sum(o.killed and o.by == "spawner" for o in outcomes),
        "byKillswitch": sum(o.killed and o.by == "killswitch" for o in outcomes),
        "outcomes": {
            o.agent_id: {
                "state": o.state.value if o.state else None,
                "by": o.by,
                "elapsedMs": round(o.elapsed_s * 1000, 1),
            }
            for o in outcomes
        },
    }
