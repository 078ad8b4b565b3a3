"""The spawner's factory: readiness and heartbeat, then (once a sandbox and a model
work) task intake, agent runs and the subscriptions (``handlers``).

Task intake and kills use the broker's NATS connection directly: the intake needs
priority-ordered ``no_wait`` pulls that no subscriber abstraction offers, and the kill
path must not depend on decoding a well-formed body. What a started spawner holds is
one typed object (``Running``, then ``Serving``) with its close order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from faststream import FastStream
from faststream.nats import NatsBroker
from nats.aio.subscription import Subscription
from redis.asyncio import Redis

from services.spawner.admission import Admission
from services.spawner.agent_run import RunContext
from services.spawner.budgethold import BudgetPause
from services.spawner.clients import Gates, GitOps
from services.spawner.dispatcher import Dispatcher
from services.spawner.handlers import SpawnerHandlers
from services.spawner.kills import KillRegistry
from services.spawner.readiness import Heartbeat, Readiness, assess
from services.spawner.settings import SpawnerSettings
from services.spawner.spending import SpendPolicy
from services.spawner.worker import Worker
from shared import queue
from shared.audit import audit
from shared.bus import make_broker, make_valkey
from shared.deployment import deployment_id
from shared.kill_metrics import serve_metrics
from shared.lifecycle import AGENT_FINAL
from shared.pricing import PriceSettings, PriceTable
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
    HostSettings,
    ModelSettings,
    NatsSettings,
    QualitySettings,
    ValkeySettings,
)
from shared.spawners import SpawnerRegistry
from shared.store import StateStore
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


@dataclass
class Serving:
    """A spawner taking tasks: its intake, its subscriptions and its container reaper."""

    ctx: RunContext
    dispatcher: Dispatcher
    subs: list[Subscription]
    intake: asyncio.Task[None]
    reaper: asyncio.Task[None] | None
    budget: BudgetPause

    async def close(self, kills: KillRegistry) -> None:
        """Stop taking tasks, hand the runs under way back to the queue, unsubscribe."""
        await self.dispatcher.stop()
        for running in list(kills.agents.values()):
            running.task.cancel("spawner stopping")
        waiting = [r.task for r in kills.agents.values()]
        if waiting:
            await asyncio.wait(waiting, timeout=20)
        self.intake.cancel()
        self.budget.close()
        if self.reaper is not None:
            self.reaper.cancel()
        if self.ctx.warm is not None:
            await self.ctx.warm.close()
        for sub in self.subs:
            await sub.unsubscribe()


@dataclass
class Running:
    """What a started spawner holds; ``serving`` once a sandbox and a model work."""

    redis: Redis
    heartbeat: Heartbeat
    readiness: Readiness
    serving: Serving | None = None
    recheck: asyncio.Task[None] | None = None

    async def close(self, kills: KillRegistry) -> None:
        """The heartbeat first (the gateway stops counting on us), then the rest."""
        await self.heartbeat.stop()
        if self.recheck is not None:
            self.recheck.cancel()
        if self.serving is not None:
            await self.serving.close(kills)
        await self.redis.aclose()


async def serve(
    broker: NatsBroker,
    redis: Redis,
    readiness: Readiness,
    kills: KillRegistry,
    *,
    prefix: str,
    settings: SpawnerSettings,
    model: ModelSettings,
    quality: QualitySettings,
    prices: PriceTable,
    instance: str,
    host: str,
) -> Serving:
    """Take tasks: the run context, the intake, the subscriptions, the reaper."""
    assert readiness.factory is not None
    nc = broker.connection
    store = StateStore(redis, prefix=prefix)
    factory = readiness.factory
    if factory.unsafe:
        log.warning(
            "MOSAIC_SANDBOX=none: agents run as bare host processes, NOT isolated "
            "(shown as unsafe in /health and every agent's status)"
        )
    if isinstance(factory, (HostSandboxFactory, BwrapSandboxFactory)) and factory.groups is None:
        # so the killswitch can end this spawner's commands if it hangs or dies
        factory.groups = ProcessGroupRegistry(redis, prefix)
    serve_metrics()
    deployment = await deployment_id(store)
    admission = (
        Admission(
            settings.spawner_concurrency,
            initial=settings.spawner_admission_initial,
            target_s=settings.spawner_admission_target_s,
        )
        if settings.spawner_admission
        else None
    )
    ctx = RunContext(
        tracker=AgentTracker(store, broker),
        gitops=GitOps(broker, settings.gitops_timeout_s, host, admission),
        gates=Gates(broker, settings.gates_timeout_s, settings.gates_attempts, host, admission),
        sandboxes=factory,
        warm=factory.start_warm_pool() if isinstance(factory, DockerSandboxFactory) else None,
        model=model,
        quality=quality,
        settings=settings,
        instance=instance,
        deployment=deployment,
        default_image=readiness.default_image,
        spending=SpendPolicy(
            prices=prices,
            budget=BudgetSettings(),
            audit=lambda entry: audit(nc.jetstream(), entry),
        ),
    )
    worker = Worker(ctx, kills, nc, on_budget_hold=lambda: budget.hold())
    dispatcher = Dispatcher(
        nc, settings.spawner_concurrency, worker.handle, settings.task_idle_poll_s, admission
    )
    budget = BudgetPause(dispatcher, store, settings.budget_hold_poll_s)
    subs = await SpawnerHandlers(ctx, kills, dispatcher, nc).subscribe()
    hold = await store.held()
    if hold is not None and hold.get("kind") == "budget":
        budget.hold()
    elif hold is not None:
        log.warning("a kill-all is in force: no task starts until an admin resumes")
        kills.halted = True
        dispatcher.pause()
    serving = Serving(
        ctx,
        dispatcher,
        subs,
        intake=asyncio.create_task(dispatcher.run()),
        reaper=_start_reaper(factory, store, deployment),
        budget=budget,
    )
    log.info(
        "spawner ready: %d slots, sandbox %s%s, provider %s (model %s)",
        settings.spawner_concurrency,
        factory.kind,
        f" ({ctx.warm.size} warm per repository)" if ctx.warm is not None else "",
        model.provider(),
        model.model_name(),
    )
    return serving


def create_app(
    settings: SpawnerSettings | None = None,
    nats: NatsSettings | None = None,
    valkey: ValkeySettings | None = None,
    model: ModelSettings | None = None,
    quality: QualitySettings | None = None,
    sandboxes: SandboxFactory | None = None,
    host: HostSettings | None = None,
) -> FastStream:
    """Build the spawner; it connects and starts taking tasks only when run. Its agents'
    worktrees and gate runs are asked of its host's gitops and gates (``MOSAIC_HOST_ID``)."""
    spawner = settings or SpawnerSettings()
    valkey = valkey or ValkeySettings()
    broker = make_broker(nats or NatsSettings(), "spawner")
    add_health(broker, "spawner")
    app = FastStream(broker)
    kills = KillRegistry()
    running: list[Running] = []
    sandbox_settings = SandboxSettings()
    model_settings = model or ModelSettings()
    prices = PriceSettings().table()  # a bad price file stops the spawner here, not mid-run
    instance = instance_name("spawner")
    host_id = (host or HostSettings()).mosaic_host_id

    async def start_serving(state: Running) -> None:
        state.serving = await serve(
            broker,
            state.redis,
            state.readiness,
            kills,
            prefix=valkey.state_prefix,
            settings=spawner,
            model=model_settings,
            quality=quality or QualitySettings(),
            prices=prices,
            instance=instance,
            host=host_id,
        )

    @app.on_startup
    async def prepare() -> None:
        # Before the broker starts, so the record exists once the health probe answers.
        redis = make_valkey(valkey)
        readiness = await assess(model_settings, sandbox_settings, sandboxes)
        heartbeat = Heartbeat(
            SpawnerRegistry(redis, valkey.state_prefix),
            readiness.capability(instance, spawner.spawner_concurrency),
            spawner.spawner_heartbeat_s,
            spawner.spawner_record_ttl_s,
        )
        await heartbeat.beat()
        running.append(Running(redis, heartbeat, readiness))

    @app.after_startup
    async def start() -> None:
        state = running[0]
        state.heartbeat.start()
        # the queue's consumers, even when not ready: tasks queued meanwhile are counted
        await queue.ensure_consumers(
            broker.connection.jetstream(), spawner.task_ack_wait_s, spawner.task_max_deliver
        )
        if state.readiness.ready:
            await start_serving(state)
            return
        problems = "; ".join(state.readiness.problems)
        log.error("spawner NOT ready, it takes no task: %s", problems)
        if model_settings.problem() is None:  # only the sandbox is missing: it may come up
            state.recheck = asyncio.create_task(recheck(state))

    async def recheck(state: Running) -> None:
        """Look for a sandbox again now and then (a Docker daemon starting after us);
        serve once one works. A missing model is settings: that needs a restart."""
        while True:
            await asyncio.sleep(spawner.spawner_recheck_s)
            readiness = await assess(model_settings, sandbox_settings, sandboxes)
            state.heartbeat.capability = readiness.capability(instance, spawner.spawner_concurrency)
            with contextlib.suppress(Exception):  # the heartbeat retries on its own
                await state.heartbeat.beat()
            if readiness.ready:
                state.readiness = readiness
                try:
                    await start_serving(state)
                except Exception:  # say so: this task has no one else to tell
                    log.exception("could not start serving after the sandbox appeared")
                    raise
                return

    @app.on_shutdown
    async def stop() -> None:
        while running:
            await running.pop().close(kills)

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

    settings = factory.settings
    return asyncio.create_task(
        run_reaper(
            factory.client,
            is_live,
            interval_s=settings.reap_interval_s,
            deployment=deployment,
            warm_max_age_s=settings.warm_max_age_s,
        )
    )
