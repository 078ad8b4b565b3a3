"""The spawner's subscriptions: raw core-NATS callbacks, thin.

Kill orders are read leniently (a kill must act on any body: the plain NATS CLI sends
what the operator typed); the rest hand the message to the module that owns the topic.
Task intake is not here: it pulls from JetStream in priority order (``dispatcher``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.spawner.agent_run import RunContext
from services.spawner.dispatcher import Dispatcher
from services.spawner.envcheck import check_environment
from services.spawner.exhausted import MAX_DELIVERIES_ADVISORY, on_max_deliveries
from services.spawner.killrecords import write_together
from services.spawner.kills import KillRegistry
from shared import subjects
from shared.messages.kill import KillOrdered
from shared.settings import HomeSettings

log = logging.getLogger(__name__)


@dataclass
class SpawnerHandlers:
    """What the spawner does when an order or a notice arrives."""

    ctx: RunContext
    kills: KillRegistry
    dispatcher: Dispatcher
    nc: Client
    _writers: set[asyncio.Task[None]] = field(default_factory=set)
    """A kill-all's record writers still at work (``killrecords``)."""

    async def on_kill_one(self, msg: Msg) -> None:
        """``mosaic.kill.agent.<id>``: cancel that agent's run if it is here."""
        agent_id = msg.subject.rsplit(".", 1)[-1]
        if self.kills.kill(agent_id, KillOrdered.lenient(msg.data)):
            log.warning("kill ordered", extra={"agent_id": agent_id})

    async def on_kill_all(self, msg: Msg) -> None:
        """``mosaic.kill.all``: stop taking tasks and cancel every run here (the queue's
        hold is the killswitch's to record: ``services.killswitch.logic``)."""
        began = time.perf_counter()
        self.dispatcher.pause()
        order = KillOrdered.lenient(msg.data)
        killed = self.kills.kill_all(order)
        writer = write_together(self.ctx.tracker, [self.kills.agents[a] for a in killed])
        if writer is not None:  # held until done: the loop keeps only a weak reference
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        log.warning("kill-all ordered: %d agents here, their sandboxes killed in %.1f ms; "
                    "intake paused", len(killed), (time.perf_counter() - began) * 1000)  # fmt: skip
        if self.ctx.warm is not None:
            drained = await self.ctx.warm.drain()
            log.warning("kill-all: %d warm sandboxes removed", drained)

    async def on_resume(self, _: Msg) -> None:
        """``mosaic.kill.resume``: take tasks again once the hold is really gone."""
        if await self.ctx.tracker.store.held() is None:
            log.warning("kill-all lifted; intake resumed")
            self.kills.resume()
            self.dispatcher.resume()

    async def on_pushed(self, msg: Msg) -> None:
        """``mosaic.repo.pushed``: the conflict forecast for agents running here."""
        await self.ctx.forecast.on_message(msg.data)

    async def on_environment_check(self, msg: Msg) -> None:
        """``mosaic.spawner.environment.check`` (docker spawners): is the image to be had?"""
        assert self.ctx.environments is not None
        answer = await check_environment(
            self.ctx.environments, self.ctx.instance, HomeSettings().repos_dir, msg.data
        )
        await msg.respond(answer.to_bytes())

    async def on_max_deliveries(self, msg: Msg) -> None:
        """JetStream's advisory: a task whose deliveries ran out ends ``failed``."""
        await on_max_deliveries(self.nc.jetstream(), self.ctx.tracker, msg.data, self.ctx.gitops)

    async def subscribe(self) -> list[Subscription]:
        """Every subscription of a serving spawner: orders and notices reach each spawner
        (no queue group); an environment check one docker spawner (``spawner-env``)."""
        subs = [
            await self.nc.subscribe(MAX_DELIVERIES_ADVISORY, cb=self.on_max_deliveries),
            await self.nc.subscribe(subjects.KILL_AGENT_ANY, cb=self.on_kill_one),
            await self.nc.subscribe(subjects.REPO_PUSHED, cb=self.on_pushed),
            await self.nc.subscribe(subjects.KILL_ALL, cb=self.on_kill_all),
            await self.nc.subscribe(subjects.KILL_RESUME, cb=self.on_resume),
        ]
        if self.ctx.sandboxes.kind == "docker":  # only a docker host has images to check
            subs.append(
                await self.nc.subscribe(
                    subjects.spawner_environment_check(self.ctx.host),
                    queue=subjects.spawner_env_queue(self.ctx.host),
                    cb=self.on_environment_check,
                )
            )
        return subs
