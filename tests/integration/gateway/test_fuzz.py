"""Property-based fuzzing of the gateway from its own OpenAPI document (schemathesis):
bounded examples per operation, against a real gateway on real NATS and Valkey. No
answer may be a 5xx, and every answer must match the documented status codes, content
types and schemas (the error shape included)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from requests.structures import CaseInsensitiveDict
from schemathesis.checks import positive_data_acceptance

from mosaic.embedded import free_port
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from shared.settings import HomeSettings, NatsSettings, QualitySettings, ValkeySettings
from tests.integration.gateway.conftest import ADMIN, OPERATOR

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _settings() -> GatewaySettings:
    return GatewaySettings(mosaic_api_token=OPERATOR, mosaic_admin_token=ADMIN, kill_wait_s=0.05)


# The document comes from the app itself (building the app opens no connection).
schema = schemathesis.openapi.from_dict(create_app(_settings()).openapi()).exclude(
    path="/events/stream"  # an endless stream: covered by test_feed.py
)


@schema.auth()
class AdminToken:
    """Every call carries the admin token (auth failures are covered by test_contract)."""

    def get(self, case: schemathesis.Case[Any], context: object) -> str:
        return ADMIN

    def set(self, case: schemathesis.Case[Any], data: str, context: object) -> None:
        headers = case.headers if case.headers is not None else CaseInsensitiveDict()
        headers["Authorization"] = f"Bearer {data}"
        case.headers = headers


@pytest.fixture(scope="module")
def gates_service(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real gates service, so POST /api/quality/check has someone to ask, and a real
    gitops, so POST /agents/spawn can ask whether a local repository path exists."""
    from services.gates.app import create_app as create_gates
    from services.gitops.app import create_app as create_gitops

    gates = create_gates(NatsSettings(nats_url=nats_url))
    gitops = create_gitops(
        NatsSettings(nats_url=nats_url), HomeSettings(mosaic_home=tmp_path_factory.mktemp("g"))
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    brokers = [b for b in (gates.broker, gitops.broker) if b is not None]
    for broker in brokers:
        asyncio.run_coroutine_threadsafe(broker.start(), loop).result(15)
    yield
    for broker in brokers:
        asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(15)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture(scope="module")
def base_url(nats_url: str, valkey_url: str, gates_service: None) -> Iterator[str]:
    """A gateway in a thread of its own (schemathesis calls it synchronously)."""
    app = create_app(
        _settings(),
        NatsSettings(nats_url=nats_url),
        ValkeySettings(valkey_url=valkey_url, state_prefix=f"fuzz{free_port()}"),
        QualitySettings(),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def nats_url(nats_server: object) -> str:
    return f"nats://127.0.0.1:{nats_server.port}"  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def valkey_url(valkey_server: object) -> str:
    return f"redis://127.0.0.1:{valkey_server.port}/0"  # type: ignore[attr-defined]


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case[Any], base_url: str) -> None:
    case.call_and_validate(
        base_url=base_url,
        timeout=10,
        # Schema-valid input may still be refused on its merits (a local repository path
        # that does not exist, an unknown agent id): 422/404 there is the contract.
        excluded_checks=[positive_data_acceptance],
    )
