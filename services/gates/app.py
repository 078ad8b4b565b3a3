"""The gates service's factory: answers ``mosaic.gates.check`` in the ``gates`` queue group."""

from __future__ import annotations

import asyncio
import logging

from faststream import FastStream

from services.gates.docker_runner import DockerRunner, docker_client
from services.gates.errors import RunnerError
from services.gates.handlers import register
from services.gates.logic import GateChecker
from services.gates.reviewer import Reviewer
from services.gates.runner import CommandRunner, LocalRunner, RunLimits, tool_path
from services.gates.settings import GatesSettings
from shared.audit import audit
from shared.bus import make_broker
from shared.messages.audit import AuditEntry
from shared.service import add_health, instance_name
from shared.settings import HomeSettings, ModelSettings, NatsSettings

log = logging.getLogger(__name__)


def _limits(settings: GatesSettings) -> RunLimits:
    return RunLimits(
        memory_mb=settings.gates_memory_mb, cpus=settings.gates_cpus, pids=settings.gates_pids
    )


async def choose_runner(settings: GatesSettings) -> CommandRunner:
    """``docker`` when asked for or (``auto``) when a daemon answers; else ``local``."""
    if settings.gates_sandbox in ("docker", "auto"):
        try:
            client = await asyncio.to_thread(docker_client, settings.gates_docker_timeout_s)
            runner = DockerRunner(
                client, settings.gates_image, _limits(settings), settings.gates_docker_timeout_s
            )
            await runner.check()
        except Exception as exc:
            reason = exc.message if isinstance(exc, RunnerError) else str(exc)
            if settings.gates_sandbox == "docker":
                raise RunnerError(f"GATES_SANDBOX=docker but {reason}") from exc
            log.warning("gates: no usable Docker (%s); falling back to local commands", reason)
        else:
            log.info("gates: commands run in docker containers from %s", settings.gates_image)
            return runner
    log.warning("gates: LOCAL runner: gate commands run as this user on this host (not isolation)")
    return LocalRunner(
        tool_path(settings.gates_tool_path, settings.gates_own_tools), _limits(settings)
    )


def create_app(
    nats: NatsSettings | None = None,
    settings: GatesSettings | None = None,
    model: ModelSettings | None = None,
    home: HomeSettings | None = None,
    runner: CommandRunner | None = None,
) -> FastStream:
    """Build the gates service; nothing connects and no runner is chosen until it runs."""
    settings = settings or GatesSettings()
    model = model or ModelSettings()
    root = settings.gates_worktree_root or (home or HomeSettings()).mosaic_home
    broker = make_broker(nats or NatsSettings(), "gates")
    add_health(broker, "gates")
    app = FastStream(broker)

    async def write_audit(entry: AuditEntry) -> object:
        return await audit(broker.connection.jetstream(), entry)

    reviewer = Reviewer(
        model,
        threshold=settings.gates_review_threshold,
        timeout=settings.gates_review_timeout_s,
        max_diff_chars=settings.gates_review_max_diff_chars,
        excerpt_chars=settings.gates_excerpt_chars,
    )
    checker = GateChecker(
        settings,
        runner or LocalRunner(tool_path(settings.gates_tool_path, settings.gates_own_tools)),
        reviewer,
        write_audit,
        root,
        actor=instance_name("gates"),
    )
    register(broker, checker, settings.gates_concurrency)

    @app.on_startup
    async def pick_runner() -> None:
        if runner is None:
            checker.runner = await choose_runner(settings)
        review = "on" if reviewer.available else "off (no provider key)"
        log.info(
            "gates ready: runner %s, AI review %s, worktrees under %s",
            checker.runner.kind,
            review,
            root,
        )

    @app.on_shutdown
    async def close() -> None:
        await reviewer.aclose()

    return app
