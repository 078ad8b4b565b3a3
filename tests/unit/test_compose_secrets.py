"""compose.yaml gives each service only its own secrets, by the table ``mosaic up`` uses.

The file is parsed as YAML (merge keys resolved), not run: for each service, every
variable that holds a secret must be one ``SERVICE_SECRETS`` grants it, and every secret
the file references (``${NATS_SPAWNER_PASSWORD}`` inside a URL...) must reach exactly
the services it belongs to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mosaic import natsauth
from mosaic.serviceenv import MODEL_KEY, SERVICE_SECRETS, holds_secret

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVICES = set(SERVICE_SECRETS)
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    services = loaded["services"]
    assert isinstance(services, dict)
    return services


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}


def test_each_service_holds_only_the_secrets_the_table_grants(compose: dict[str, Any]) -> None:
    assert set(compose) >= SERVICES
    for name in SERVICES:
        held = {k for k in environment(compose[name]) if holds_secret(k)}
        assert held <= SERVICE_SECRETS[name], (name, held - SERVICE_SECRETS[name])
    gateway = environment(compose["gateway"])
    assert {"MOSAIC_API_TOKEN", "MOSAIC_ADMIN_TOKEN"} <= set(gateway)
    for name in ("spawner", "gates"):
        assert set(MODEL_KEY) <= set(environment(compose[name])), name
    for name in SERVICES - {"spawner", "gates"}:
        assert not set(MODEL_KEY) & set(environment(compose[name])), name


def test_each_referenced_secret_reaches_only_its_owners(compose: dict[str, Any]) -> None:
    referencing: dict[str, set[str]] = {}
    for name in SERVICES:
        for value in environment(compose[name]).values():
            for variable in _REFERENCE.findall(value):
                if holds_secret(variable):
                    referencing.setdefault(variable, set()).add(name)
    valkey_users = {name for name in SERVICES if "VALKEY_URL" in SERVICE_SECRETS[name]}
    expected = {natsauth.password_variable(user): {user} for user in natsauth.SERVICE_USERS}
    expected[natsauth.password_variable(natsauth.ADMIN)] = {"gateway"}  # NATS_ADMIN_URL
    expected["VALKEY_PASSWORD"] = valkey_users
    assert referencing == expected
    for name in SERVICES:
        env = environment(compose[name])
        assert env["NATS_URL"].startswith(f"nats://{name}:${{"), name
        assert ("VALKEY_URL" in env) == (name in valkey_users), name


def test_the_servers_require_their_passwords(compose: dict[str, Any]) -> None:
    nats_env = environment(compose["nats"])
    assert set(nats_env) == {natsauth.password_variable(u) for u in natsauth.USERS}
    assert all(":?" in value for value in nats_env.values())  # compose refuses to start without
    assert compose["nats"]["command"] == ["-c", "/etc/nats/auth.conf"]
    assert "./containers/nats/auth.conf:/etc/nats/auth.conf:ro" in compose["nats"]["volumes"]
    valkey = compose["valkey"]
    assert set(environment(valkey)) == {"VALKEY_PASSWORD"}
    assert ":?" in environment(valkey)["VALKEY_PASSWORD"]
    script = " ".join(valkey["entrypoint"])
    assert "requirepass" in script
    assert "VALKEY_PASSWORD" not in " ".join(valkey["command"])  # not in argv


def test_the_compose_nats_config_is_generated_from_the_permissions() -> None:
    assert natsauth.COMPOSE_CONFIG.read_text() == natsauth.render_compose(), (
        "containers/nats/auth.conf is stale: run `python -m mosaic.natsauth`"
    )


def test_compose_secrets_script_makes_every_password() -> None:
    script = (ROOT / "containers" / "compose-secrets.sh").read_text()
    users = re.search(r"for user in ([a-z ]+); do", script)
    assert users is not None
    assert set(users.group(1).split()) == set(natsauth.USERS)
    for name in ("MOSAIC_API_TOKEN", "MOSAIC_ADMIN_TOKEN", "VALKEY_PASSWORD"):
        assert name in script
