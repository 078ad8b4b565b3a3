"""compose.cluster.yaml (over compose.yaml): three NATS nodes routed to each other, Valkey
with a replica and three sentinels, and every service given all nodes and the sentinels.

Parsed as YAML (merge keys resolved), not run; tests/e2e/test_compose.py resolves the
two files with the compose CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mosaic.serviceenv import SERVICE_SECRETS, holds_secret
from shared.natsurls import parse_nats_url

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NODES = ("nats", "nats-2", "nats-3")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.cluster.yaml").read_text())
    assert isinstance(loaded, dict)
    found = loaded["services"]
    assert isinstance(found, dict)
    return found


def script(service: dict[str, Any]) -> str:
    return " ".join(service["entrypoint"])


def test_three_nats_nodes_each_named_and_routed_to_all(services: dict[str, Any]) -> None:
    names = {services[n]["environment"]["NATS_NODE_NAME"] for n in NODES}
    assert names == {"nats-1", "nats-2", "nats-3"}
    for node in NODES:
        text = script(services[node])
        assert "for peer in nats nats-2 nats-3" in text
        assert "nats-route://route:$$pw@$$peer:6222" in text
        assert 'include "../etc/nats/auth.conf"' in text  # the same users on every node
        assert ":?" in services[node]["environment"]["NATS_ROUTE_PASSWORD"]
        assert "6222" in services[node]["expose"]
    volumes = {str(services[n].get("volumes", ["nats-data:/data"])[0]) for n in NODES}
    assert len(volumes) == 3  # each node its own store


def test_valkey_has_a_replica_and_three_sentinels_with_a_majority_quorum(
    services: dict[str, Any],
) -> None:
    assert services["valkey-replica"]["environment"]["VALKEY_REPLICA_OF"] == "valkey"
    assert "masterauth" in script(services["valkey"])  # a demoted primary can sync again
    for name in SENTINELS:
        text = script(services[name])
        assert "--sentinel" in text
        assert "sentinel monitor mosaic valkey 6379 2" in text
        assert 'sentinel auth-pass mosaic "$$VALKEY_PASSWORD"' in text
        assert 'requirepass "$$VALKEY_PASSWORD"' in text
        assert "26379" in str(services[name]["healthcheck"]["test"])


@pytest.mark.parametrize("service", sorted(SERVICE_SECRETS))
def test_each_service_gets_every_node_with_its_own_user_and_the_sentinels(
    services: dict[str, Any], service: str
) -> None:
    env = services[service]["environment"]
    resolved = env["NATS_URL"].replace("${NATS_" + service.upper() + "_PASSWORD}", "pw")
    nodes = parse_nats_url(resolved)
    assert nodes.user == service
    assert nodes.password == "pw"
    assert nodes.servers == tuple(f"nats://{n}:4222" for n in NODES)
    assert env["MOSAIC_STREAM_REPLICAS"] == "3"
    sentinels = env["VALKEY_SENTINELS"].split(",")
    assert sentinels == [f"{name}:26379" for name in SENTINELS]
    for name, value in env.items():  # no secret beyond what the table grants it
        if holds_secret(name):
            assert name in SERVICE_SECRETS[service], (service, name)
            assert value


def test_compose_secrets_makes_the_route_password() -> None:
    text = (ROOT / "containers" / "compose-secrets.sh").read_text()
    assert "NATS_ROUTE_PASSWORD" in text
