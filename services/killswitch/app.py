"""The killswitch's factory: core NATS kill subjects (queue group ``killswitch``), no
JetStream in the way; the reaper on an interval; the audit trail on JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from faststream import FastStream
from faststream.nats import NatsBroker
from nats.aio.subscription import Subscription
from redis.asyncio import Redis

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
from shared.settings import HostSettings, NatsSettings, ValkeySettings
from shared.store import StateStore
from shared.subjects import GitOp
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


@dataclass
class Running:
    """What a started killswitch holds open, and how it lets go of it (in order)."""

    redis: Redis
    stopper: Stopper
    handlers: KillHandlers
    subs: list[Subscription]
    stop: asyncio.Event
    reaper: asyncio.Task[None]

    async def close(self) -> None:
        """Stop the reaper, stop taking orders, finish the kills under way, then close."""
        self.stop.set()
        self.reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reaper
        for sub in self.subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await self.handlers.drain()
        self.stopper.close()
        await self.redis.aclose()


async def start(
    broker: NatsBroker, settings: KillswitchSettings, valkey: ValkeySettings, host: str
) -> Running:
    """Open Valkey and Docker, subscribe to the kill subjects, start the reaper.

    Each order reaches one killswitch instance of every host (queue group
    ``killswitch-<host>``; spawners get every order: no group), which ends that host's
    agents: their sandboxes and worktrees are only reachable there."""
    redis = make_valkey(valkey)
    store = StateStore(redis, prefix=valkey.state_prefix)
    stopper = Stopper(
        ProcessGroupRegistry(redis, valkey.state_prefix),
        use_docker=settings.killswitch_docker,
        docker_timeout_s=settings.docker_timeout_s,
        deployment=await deployment_id(store),
    )

    async def remove_worktree(req: WorktreeRemoveRequested) -> WorktreeRemoved:
        return await request(
            broker,
            subjects.gitops(host, GitOp.WORKTREE_REMOVE),
            req,
            WorktreeRemoved,
            settings.gitops_timeout_s,
        )

    async def write_audit(entry: AuditEntry) -> object:
        return await audit(broker.connection.jetstream(), entry)

    ks = Killswitch(AgentTracker(store, broker), stopper, remove_worktree, settings, host)
    handlers = KillHandlers(ks, write_audit, instance_name("killswitch"))
    nc = broker.connection
    subs = [
        await nc.subscribe(
            subjects.KILL_AGENT_ANY,
            queue=subjects.killswitch_queue(host),
            cb=handlers.concurrently(handlers.on_kill_one),
        ),
        await nc.subscribe(
            subjects.KILL_ALL,
            queue=subjects.killswitch_queue(host),
            cb=handlers.concurrently(handlers.on_kill_all),
        ),
    ]
    stop = asyncio.Event()
    reaper = asyncio.create_task(run_reaper(ks, stop))
    return Running(redis, stopper, handlers, subs, stop, reaper)


def create_app(
    settings: KillswitchSettings | None = None,
    nats: NatsSettings | None = None,
    valkey: ValkeySettings | None = None,
    host: HostSettings | None = None,
) -> FastStream:
    """Build the killswitch; raw subscriptions so a malformed body still kills (an order
    is read leniently), each order handled in its own task so one kill's grace never
    delays the next."""
    settings = settings or KillswitchSettings()
    broker = make_broker(nats or NatsSettings(), "killswitch")
    add_health(broker, "killswitch")
    app = FastStream(broker)
    running: list[Running] = []

    @app.after_startup
    async def started() -> None:
        host_id = (host or HostSettings()).mosaic_host_id
        running.append(await start(broker, settings, valkey or ValkeySettings(), host_id))
        serve_metrics()
        log.info("killswitch of host %s ready (grace %.1fs)", host_id, settings.kill_grace_s)

    @app.on_shutdown
    async def shutdown() -> None:
        while running:
            await running.pop().close()

    return app
