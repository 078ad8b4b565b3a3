"""A real gateway (uvicorn on a free port, in the test's event loop) against the session's
nats-server and valkey-server, with its own key prefix per test, and a real gitops beside
it (the gateway asks gitops whether a task's local repository path exists). No spawner
runs: tests that need an agent to move drive its state through ``AgentTracker`` as a
service would."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from faststream.nats import NatsBroker

from mosaic.embedded import free_port
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gitops.app import create_app as create_gitops
from shared.bus import make_broker
from shared.federation.settings import FederationSettings
from shared.settings import (
    HomeSettings,
    HostSettings,
    NatsSettings,
    QualitySettings,
    ValkeySettings,
)
from shared.store import StateStore
from shared.tracker import AgentTracker

OPERATOR = "operator-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef0123"


@dataclass
class Gateway:
    url: str
    app: FastAPI
    settings: GatewaySettings
    store: StateStore
    tracker: AgentTracker
    broker: NatsBroker

    def client(self, token: str | None = OPERATOR) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


async def start_gateway(
    nats_url: str, valkey_url: str, prefix: str, **overrides: Any
) -> tuple[Gateway, uvicorn.Server, asyncio.Task[None]]:
    yolo = overrides.pop("yolo", False)
    with_gitops: bool = overrides.pop("with_gitops", True)
    federation: FederationSettings | None = overrides.pop("federation", None)
    settings = GatewaySettings(
        mosaic_api_token=OPERATOR,
        mosaic_admin_token=ADMIN,
        kill_wait_s=overrides.pop("kill_wait_s", 1.0),
        **overrides,
    )
    app = create_app(
        settings,
        NatsSettings(nats_url=nats_url),
        ValkeySettings(valkey_url=valkey_url, state_prefix=prefix),
        QualitySettings(yolo_mode=yolo),
        federation or FederationSettings(federation_enabled=False),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )
    server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]

    async def serve() -> None:
        """The gateway, and while it runs the gitops it asks (stopped with it)."""
        if not with_gitops:
            await server.serve()
            return
        with tempfile.TemporaryDirectory(prefix="gw-gitops-") as home:
            gitops = create_gitops(  # a host of its own: tests' own gitops keep theirs
                NatsSettings(nats_url=nats_url),
                HomeSettings(mosaic_home=Path(home)),
                host=HostSettings(mosaic_host_id="gateway-fixture"),
            )
            assert gitops.broker is not None
            async with gitops.broker:
                await gitops.broker.start()
                await server.serve()

    task = asyncio.create_task(serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    resources = app.state.resources
    gateway = Gateway(
        url=f"http://127.0.0.1:{port}",
        app=app,
        settings=settings,
        store=resources.store,
        tracker=resources.tracker,
        broker=resources.broker,
    )
    return gateway, server, task


@pytest.fixture
async def gateway(nats_url: str, valkey_url: str, unique: str) -> AsyncIterator[Gateway]:
    gw, server, task = await start_gateway(nats_url, valkey_url, f"gw{unique}")
    yield gw
    server.should_exit = True
    await asyncio.wait_for(task, 15)


@pytest.fixture
async def operator(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client(OPERATOR) as client:
        yield client


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client(ADMIN) as client:
        yield client


@pytest.fixture
async def publisher(nats_url: str) -> AsyncIterator[NatsBroker]:
    broker = make_broker(NatsSettings(nats_url=nats_url), "test-publisher")
    await broker.start()
    yield broker
    await broker.stop()


def spawn_body(repo: Path | str, task_id: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": ["Add a greeting"]},
        "gateProfile": "minimal",
    }
    body.update(extra)
    return body


CliRun = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> CliRun:
    """``mosaic`` as a user runs it: a home whose secrets hold the operator and admin
    tokens (no ``$MOSAIC_TOKEN``); answers ``(exit code, stdout, stderr)``."""
    from mosaic.cli import main

    home = tmp_path / "home"
    (home / "secrets").mkdir(parents=True)
    (home / "secrets" / "api-token").write_text(OPERATOR)
    (home / "secrets" / "admin-token").write_text(ADMIN)
    monkeypatch.delenv("MOSAIC_TOKEN", raising=False)

    async def run(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, ["--home", str(home), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
