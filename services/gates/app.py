"""The gates service's factory: answers ``mosaic.gates.<host>.check`` for its host's
agents (queue group ``gates-<host>``)."""

from __future__ import annotations

import logging

from faststream import FastStream

from services.gates.handlers import register
from services.gates.logic import GateChecker
from services.gates.reviewer import Reviewer
from services.gates.runner import SandboxSource, SelectedSandboxes
from services.gates.settings import GatesSettings
from shared.audit import audit
from shared.bus import make_broker
from shared.messages.audit import AuditEntry
from shared.sandbox.base import SandboxError
from shared.service import add_health, instance_name
from shared.settings import HomeSettings, HostSettings, ModelSettings, NatsSettings

log = logging.getLogger(__name__)


def create_app(
    nats: NatsSettings | None = None,
    settings: GatesSettings | None = None,
    model: ModelSettings | None = None,
    home: HomeSettings | None = None,
    sandboxes: SandboxSource | None = None,
    host: HostSettings | None = None,
) -> FastStream:
    """Build the gates service; nothing connects and no sandbox is chosen until it runs.

    Gate commands run in the sandbox ``MOSAIC_SANDBOX`` selects (as the spawner's), unless
    ``sandboxes`` is given. When none can run, the service still answers: every check
    fails closed with the reason, and the next check tries again.
    """
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
    source = sandboxes or SelectedSandboxes()
    checker = GateChecker(
        settings,
        source,
        reviewer,
        write_audit,
        root,
        actor=instance_name("gates"),
    )
    host_id = (host or HostSettings()).mosaic_host_id
    register(broker, checker, settings.gates_concurrency, host_id)

    @app.after_startup
    async def pick_sandbox() -> None:
        try:
            kind = (await source.factory()).kind
        except SandboxError as exc:
            kind = "NONE"
            log.error("gates: no sandbox can run gate commands; every check fails: %s", exc)
        review = "on" if reviewer.available else "unavailable (no provider key): fails closed"
        log.info(
            "gates ready on host %s: sandbox %s, AI review %s, worktrees under %s",
            host_id,
            kind,
            review,
            root,
        )

    @app.on_shutdown
    async def close() -> None:
        await reviewer.aclose()

    return app
