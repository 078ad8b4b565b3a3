"""The killswitch's factory: core NATS kill subjects, no queue in the way."""

from __future__ import annotations

import logging

from faststream import FastStream
from nats.aio.msg import Msg

from services.killswitch.logic import hold_all, kill_if_queued
from services.killswitch.settings import KillswitchSettings
from shared import subjects
from shared.bus import make_broker, make_valkey
from shared.messages.kill import KillOrdered
from shared.service import add_health
from shared.settings import NatsSettings, ValkeySettings
from shared.store import StateStore
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


def create_app(
    settings: KillswitchSettings | None = None,
    nats: NatsSettings | None = None,
    valkey: ValkeySettings | None = None,
) -> FastStream:
    """Build the killswitch; raw subscriptions so a malformed body still kills."""
    settings = settings or KillswitchSettings()
    broker = make_broker(nats or NatsSettings(), "killswitch")
    add_health(broker, "killswitch")
    app = FastStream(broker)
    held: dict[str, object] = {}

    @app.after_startup
    async def start() -> None:
        redis = make_valkey(valkey or ValkeySettings())
        tracker = AgentTracker(StateStore(redis, prefix=settings.state_prefix), broker)
        nc = broker.connection

        async def on_kill_one(msg: Msg) -> None:
            agent_id = msg.subject.rsplit(".", 1)[-1]
            order = KillOrdered.lenient(msg.data)
            if await kill_if_queued(tracker, agent_id, order):
                log.warning("killed queued agent", extra={"agent_id": agent_id})

        async def on_kill_all(msg: Msg) -> None:
            order = KillOrdered.lenient(msg.data)
            await hold_all(tracker, order)
            log.warning(
                "kill-all recorded (reason: %s); queued tasks wait for resume", order.reason
            )

        held["subs"] = [
            await nc.subscribe(subjects.KILL_AGENT_ANY, cb=on_kill_one),
            await nc.subscribe(subjects.KILL_ALL, cb=on_kill_all),
        ]
        held["redis"] = redis

    @app.on_shutdown
    async def stop() -> None:
        for sub in held.get("subs", []):  # type: ignore[attr-defined]
            await sub.unsubscribe()
        if "redis" in held:
            await held["redis"].aclose()  # type: ignore[attr-defined]

    return app
