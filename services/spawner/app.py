"""The spawner's factory: task intake, agent runs, and the kill subscriptions.

Task intake and kills use the broker's NATS connection directly: the intake needs
priority-ordered ``no_wait`` pulls that no subscriber abstraction offers, and the kill
path must not depend on decoding a well-formed body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream import FastStream
from nats.aio.msg import Msg
from redis.asyncio import Redis

from services.spawner.agent_run import RunContext
from services.spawner.clients import Gates, GitOps
from services.spawner.dispatcher import Dispatcher
from services.spawner.exhausted import MAX_DELIVERIES_ADVISORY
from services.spawner.exhausted import on_max_deliveries as on_max_deliveries_advisory
from services.spawner.kills import KillRegistry
from services.spawner.readiness import Heartbeat, Readiness, assess
from services.spawner.settings import SpawnerSettings
from services.spawner.spending import SpendPolicy
from services.spawner.worker import Worker
from shared import queue, subjects
from shared.audit import audit
from shared.bus import make_broker, make_valkey
from shared.deployment import deployment_id
from shared.kill_metrics import serve_metrics
from shared.lifecycle import AGENT_FINAL
from shared.messages.kill import KillOrdered
from shared.pricing import PriceSettings
from shared.sandbox.base import SandboxFactory
from shared.sandbox.bwrap import BwrapSandboxFactory
from shared.sandbox.docker import DockerSandboxFactory
from shared.sandbox.host import HostSandboxFactory
from shared.sandbox.procgroups import ProcessGroupRegistry
from shared.sandbox.reaper import run_reaper
from shared.sandbox.settings import SandboxSettings
from shared.service import add_health, instance_name
from shared.settings import (
    BudgetSettings,
    ModelSettings,
    NatsSettings,
    QualitySettings,
    ValkeySettings,
)
from shared.spawners import SpawnerRegistry
from shared.store import StateStore
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


def create_app(
    settings: SpawnerSettings | None = None,
    nats: NatsSettings | None = None,
    valkey: ValkeySettings | None = None,
    model: ModelSettings | None = None,
    quality: QualitySettings | None = None,
    sandboxes: SandboxFactory | None = None,
) -> FastStream:
    """Build the spawner; it connects and starts taking tasks only when run."""
    settings = settings or SpawnerSettings()
    nats = nats or NatsSettings()
    valkey = valkey or ValkeySettings()
    broker = make_broker(nats, "spawner")
    add_health(broker, "spawner")
    app = FastStream(broker)
    kills = KillRegistry()
    held: dict[str, object] = {}

    sandbox_settings = SandboxSettings()
    prices = PriceSettings()
    prices.table()  # a bad price file stops the spawner here, not at an agent's first call
    model_settings = model or ModelSettings()
    instance = instance_name("spawner")

    @app.on_startup
    async def prepare() -> None:
        # Before the broker starts, so the record exists once the health probe answers.
        redis = make_valkey(valkey)
        held["redis"] = redis
        readiness = await assess(model_settings, sandbox_settings, sandboxes)
        heartbeat = Heartbeat(
            SpawnerRegistry(redis, settings.state_prefix),
            readiness.capability(instance, settings.spawner_concurrency),
            settings.spawner_heartbeat_s,
            settings.spawner_record_ttl_s,
        )
        await heartbeat.beat()
        held.update(readiness=readiness, heartbeat=heartbeat)

    @app.after_startup
    async def start() -> None:
        readiness = held["readiness"]
        heartbeat = held["heartbeat"]
        assert isinstance(readiness, Readiness)
        assert isinstance(heartbeat, Heartbeat)
        heartbeat.start()
        nc = broker.connection
        # the queue's consumers, even when not ready: tasks queued meanwhile are counted
        await queue.ensure_consumers(
            nc.jetstream(), settings.task_ack_wait_s, settings.task_max_deliver
        )
        if readiness.ready:
            await serve(readiness)
            return
        log.error("spawner NOT ready, it takes no task: %s", "; ".join(readiness.problems))
        if model_settings.problem() is None:  # only the sandbox is missing: it may come up
            held["recheck"] = asyncio.create_task(recheck(heartbeat))

    async def recheck(heartbeat: Heartbeat) -> None:
        """Look for a sandbox again now and then (a Docker daemon starting after us);
        serve once one works. A missing model is settings: that needs a restart."""
        while True:
            await asyncio.sleep(settings.spawner_recheck_s)
            readiness = await assess(model_settings, sandbox_settings, sandboxes)
            heartbeat.capability = readiness.capability(instance, settings.spawner_concurrency)
            with contextlib.suppress(Exception):  # the heartbeat retries on its own
                await heartbeat.beat()
            if readiness.ready:
                held["readiness"] = readiness
                try:
                    await serve(readiness)
                except Exception:  # say so: this task has no one else to tell
                    log.exception("could not start serving after the sandbox appeared")
                    raise
                return

    async def serve(readiness: Readiness) -> None:
        """Take tasks: the run context, the intake, the kill subscriptions, the reaper."""
        assert readiness.factory is not None
        nc = broker.connection
        redis = held["redis"]
        assert isinstance(redis, Redis)
        store = StateStore(redis, prefix=settings.state_prefix)
        factory = readiness.factory
        if factory.unsafe:
            log.warning(
                "MOSAIC_SANDBOX=none: agents run as bare host processes, NOT isolated "
                "(shown as unsafe in /health and every agent's status)"
            )
        if (
            isinstance(factory, (HostSandboxFactory, BwrapSandboxFactory))
            and factory.groups is None
        ):
            # so the killswitch can end this spawner's commands if it hangs or dies
            factory.groups = ProcessGroupRegistry(redis, settings.state_prefix)
        serve_metrics()
        deployment = await deployment_id(store)
        ctx = RunContext(
            tracker=AgentTracker(store, broker),
            gitops=GitOps(broker, settings.gitops_timeout_s),
            gates=Gates(broker, settings.gates_timeout_s, settings.gates_attempts),
            sandboxes=factory,
            model=model_settings,
            quality=quality or QualitySettings(),
            settings=settings,
            instance=instance,
            deployment=deployment,
            default_image=readiness.default_image,
            spending=SpendPolicy(
                prices=prices.table(),
                budget=BudgetSettings(),
                audit=lambda entry: audit(nc.jetstream(), entry),
            ),
        )
        worker = Worker(ctx, kills, nc, on_budget_hold=lambda: hold_for_budget())
        dispatcher = Dispatcher(
            nc, settings.spawner_concurrency, worker.handle, settings.task_idle_poll_s
        )

        def hold_for_budget() -> None:
            watch = held.get("budget_watch")
            if isinstance(watch, asyncio.Task) and not watch.done():
                return
            dispatcher.pause()
            log.warning("the daily budget is spent: intake paused until a resume or the next day")
            held["budget_watch"] = asyncio.create_task(watch_budget_hold())

        async def watch_budget_hold() -> None:
            """Resume the intake once no hold is in force (a resume, the next UTC day)."""
            while True:
                await asyncio.sleep(settings.budget_hold_poll_s)
                with contextlib.suppress(Exception):  # Valkey away: ask again later
                    if await store.held() is None:
                        log.warning("budget hold lifted; intake resumed")
                        dispatcher.resume()
                        return

        async def on_kill_one(msg: Msg) -> None:
            agent_id = msg.subject.rsplit(".", 1)[-1]
            if kills.kill(agent_id, KillOrdered.lenient(msg.data)):
                log.warning("kill ordered", extra={"agent_id": agent_id})

        async def on_kill_all(msg: Msg) -> None:
            dispatcher.pause()
            order = KillOrdered.lenient(msg.data)
            killed = kills.kill_all(order)
            log.warning("kill-all ordered: %d agents here; intake paused", len(killed))
            await store.hold_all(order.reason, order.requested_by)

        async def on_resume(_: Msg) -> None:
            if await store.held() is None:
                log.warning("kill-all lifted; intake resumed")
                kills.resume()
                dispatcher.resume()

        async def on_pushed(msg: Msg) -> None:
            await ctx.forecast.on_message(msg.data)

        async def on_max_deliveries(msg: Msg) -> None:
            await on_max_deliveries_advisory(nc.jetstream(), ctx.tracker, msg.data, ctx.gitops)

        subs = [
            await nc.subscribe(MAX_DELIVERIES_ADVISORY, cb=on_max_deliveries),
            await nc.subscribe(subjects.KILL_AGENT_ANY, cb=on_kill_one),
            await nc.subscribe(subjects.REPO_PUSHED, cb=on_pushed),
            await nc.subscribe(subjects.KILL_ALL, cb=on_kill_all),
            await nc.subscribe(subjects.KILL_RESUME, cb=on_resume),
        ]
        hold = await store.held()
        if hold is not None and hold.get("kind") == "budget":
            hold_for_budget()
        elif hold is not None:
            log.warning("a kill-all is in force: no task starts until an admin resumes")
            kills.halted = True
            dispatcher.pause()
        held["reaper"] = _start_reaper(factory, store, deployment)
        held.update(
            dispatcher=dispatcher,
            subs=subs,
            intake=asyncio.create_task(dispatcher.run()),
        )
        log.info(
            "spawner ready: %d slots, sandbox %s, provider %s (model %s)",
            settings.spawner_concurrency,
            factory.kind,
            model_settings.provider(),
            model_settings.model_name(),
        )

    @app.on_shutdown
    async def stop() -> None:
        heartbeat = held.get("heartbeat")
        if isinstance(heartbeat, Heartbeat):  # first: the gateway stops counting on us
            await heartbeat.stop()
        dispatcher = held.get("dispatcher")
        if isinstance(dispatcher, Dispatcher):
            await dispatcher.stop()
        for running in list(kills.agents.values()):  # hand in-flight work back to the queue
            running.task.cancel("spawner stopping")
        waiting = [r.task for r in kills.agents.values()]
        if waiting:
            await asyncio.wait(waiting, timeout=20)
        for name in ("recheck", "intake", "reaper", "budget_watch"):
            task = held.get(name)
            if isinstance(task, asyncio.Task):
                task.cancel()
        for sub in held.get("subs", []):  # type: ignore[attr-defined]
            await sub.unsubscribe()
        redis = held.get("redis")
        if redis is not None:
            await redis.aclose()  # type: ignore[attr-defined]

    return app


def _start_reaper(
    factory: SandboxFactory, store: StateStore, deployment: str
) -> asyncio.Task[None] | None:
    """Remove this system's containers of agents no longer live, at start and on an interval.

    Only containers labelled with ``deployment``: an agent unknown to this Valkey may be a
    live one of another system sharing the Docker daemon.
    """
    if not isinstance(factory, DockerSandboxFactory):
        return None

    async def is_live(agent_id: str) -> bool:
        record = await store.get_agent(agent_id)
        return record is not None and record.state not in AGENT_FINAL

    interval = factory.settings.reap_interval_s
    return asyncio.create_task(
        run_reaper(factory.client, is_live, interval_s=interval, deployment=deployment)
    )
