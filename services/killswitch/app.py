"""The killswitch's factory: core NATS kill subjects (queue group ``killswitch``), no
JetStream in the way; the reaper on an interval; the audit trail on JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream import FastStream

from services.killswitch.handlers import KillHandlers
from services.killswitch.logic import Killswitch
from services.killswitch.reaper import run_reaper
from services.killswitch.settings import KillswitchSettings
from services.killswitch.stopper import Stopper
from shared import subjects
from shared.audit import audit
from shared.bus import make_broker, make_valkey, request
from shared.deployment import deployment_id
from shared.kill_metrics import serve_metrics
from shared.messages.audit import AuditEntry
from shared.messages.gitops import WorktreeRemoved, WorktreeRemoveRequested
from shared.sandbox.procgroups import ProcessGroupRegistry
from shared.service import add_health, instance_name
from shared.settings import NatsSettings, ValkeySettings
from shared.store import StateStore
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)

QUEUE_GROUP = "killswitch"
"""Several killswitch instances share each order (spawners get every order: no group)."""


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
        store = StateStore(redis, prefix=settings.state_prefix)
        stopper = Stopper(
            ProcessGroupRegistry(redis, settings.state_prefix),
            use_docker=settings.killswitch_docker,
            docker_timeout_s=settings.docker_timeout_s,
            deployment=await deployment_id(store),
        )

        async def remove_worktree(req: WorktreeRemoveRequested) -> WorktreeRemoved:
            return await request(
                broker,
                subjects.GITOPS_WORKTREE_REMOVE,
                req,
                WorktreeRemoved,
                settings.gitops_timeout_s,
            )

        async def write_audit(entry: AuditEntry) -> object:
            return await audit(broker.connection.jetstream(), entry)

        ks = Killswitch(AgentTracker(store, broker), stopper, remove_worktree, settings)
        handlers = KillHandlers(ks, write_audit, instance_name("killswitch"))
        nc = broker.connection
        subs = [
            await nc.subscribe(
                subjects.KILL_AGENT_ANY,
                queue=QUEUE_GROUP,
                cb=handlers.concurrently(handlers.on_kill_one),
            ),
            await nc.subscribe(
                subjects.KILL_ALL, queue=QUEUE_GROUP, cb=handlers.concurrently(handlers.on_kill_all)
            ),
        ]
        stop = asyncio.Event()
        held.update(
            redis=redis,
            subs=subs,
            stopper=stopper,
            handlers=handlers,
            stop=stop,
            reaper=asyncio.create_task(run_reaper(ks, stop)),
        )
        serve_metrics()
        log.info("killswitch ready (grace %.1fs)", settings.kill_grace_s)

    @app.on_shutdown
    async def shutdown() -> None:
        stop = held.get("stop")
        if isinstance(stop, asyncio.Event):
            stop.set()
        reaper = held.get("reaper")
        if isinstance(reaper, asyncio.Task):
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reaper
        for sub in held.get("subs", []):  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        handlers = held.get("handlers")
        if isinstance(handlers, KillHandlers):
            await handlers.drain()
        stopper = held.get("stopper")
        if isinstance(stopper, Stopper):
            stopper.close()
        redis = held.get("redis")
        if redis is not None:
            await redis.aclose()  # type: ignore[attr-defined]

    return app
