"""compose.yaml validates with the compose CLI (the v2 plugin, or Debian's docker-compose)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.docker, pytest.mark.timeout(660)]

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"gateway", "spawner", "gitops", "gates", "killswitch"}
PASSWORDS = {
    "VALKEY_PASSWORD": "vpw",
    "NATS_ROUTE_PASSWORD": "routepw",
    **{f"NATS_{u.upper()}_PASSWORD": f"{u}pw" for u in ("admin", *sorted(SERVICES))},
}


def compose_cli() -> list[str]:
    """``docker compose`` when the plugin answers, else ``docker-compose``; skip if none."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    reason = "no compose CLI (containers/ensure-compose.sh installs Debian's docker-compose)"
    if os.environ.get("CI", "").lower() == "true":
        # CI installs it (root + apt); a failure to do so fails the tier
        subprocess.run(
            ["bash", str(ROOT / "containers" / "ensure-compose.sh")], check=False, timeout=600
        )
        if shutil.which("docker-compose"):
            return ["docker-compose"]
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def config(
    tmp_path: Path, *extra: str, files: tuple[str, ...] = ("compose.yaml",)
) -> dict[str, object]:
    env = {
        **os.environ,
        **PASSWORDS,
        "MOSAIC_API_TOKEN": "t",
        "MOSAIC_ADMIN_TOKEN": "a",
        "MOSAIC_HOST_HOME": str(tmp_path / "home"),
    }
    result = subprocess.run(
        [*compose_cli(), *[a for f in files for a in ("-f", str(ROOT / f))], "config", *extra],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = yaml.safe_load(result.stdout)
    assert isinstance(loaded, dict)
    return loaded


def test_compose_file_validates_and_wires_the_services(tmp_path: Path) -> None:
    spec = config(tmp_path)
    services = spec["services"]
    assert isinstance(services, dict)
    assert SERVICES | {"nats", "valkey"} <= set(services)
    home = str(tmp_path / "home")
    for name in SERVICES:
        service = services[name]
        depends = service["depends_on"]
        assert depends["nats"]["condition"] == "service_healthy", name
        assert depends["valkey"]["condition"] == "service_healthy", name
        assert "container_name" not in service  # scalable
        env = service["environment"]
        assert env["NATS_URL"] == f"nats://{name}:{name}pw@nats:4222"
        if name in ("gateway", "spawner", "killswitch"):
            assert env["VALKEY_URL"] == "redis://:vpw@valkey:6379/0"
        else:
            assert "VALKEY_URL" not in env  # no use for the state store, no password
    for name in ("spawner", "gitops", "gates"):
        mounts = json.dumps(services[name]["volumes"])
        assert f"{home}:{home}" in mounts or f'"target": "{home}"' in mounts, mounts
        assert services[name]["environment"]["MOSAIC_HOME"] == home
    for name in ("spawner", "gates", "killswitch"):
        assert "docker.sock" in json.dumps(services[name]["volumes"])
    for name in ("spawner", "gates"):
        assert "ports" not in services[name]  # so --scale works
    gateway_ports = json.dumps(services["gateway"]["ports"])
    assert "127.0.0.1" in gateway_ports
    assert "3001" in gateway_ports
    assert "ANTHROPIC_API_KEY" not in services["gateway"]["environment"]
    assert "appendonly" in json.dumps(services["valkey"]["command"])
    assert "nats-data:/data" in json.dumps(services["nats"]["volumes"]) or "nats-data" in str(
        services["nats"]["volumes"]
    )


def test_compose_builds_every_image_from_one_dockerfile(tmp_path: Path) -> None:
    services = config(tmp_path)["services"]
    assert isinstance(services, dict)
    targets = {name: svc["build"]["target"] for name, svc in services.items() if "build" in svc}
    assert targets == {n: n for n in SERVICES | {"nats", "valkey"}}
    assert {svc["build"]["dockerfile"] for svc in services.values() if "build" in svc} == {
        "containers/services.Dockerfile"
    }


def test_cluster_file_resolves_three_nodes_a_replica_and_sentinels(tmp_path: Path) -> None:
    spec = config(tmp_path, files=("compose.yaml", "compose.cluster.yaml"))
    services = spec["services"]
    assert isinstance(services, dict)
    nodes = ("nats", "nats-2", "nats-3")
    sentinels = ("sentinel-1", "sentinel-2", "sentinel-3")
    assert {*nodes, "valkey", "valkey-replica", *sentinels} <= set(services)
    assert {services[n]["environment"]["NATS_NODE_NAME"] for n in nodes} == {
        "nats-1",
        "nats-2",
        "nats-3",
    }
    for node in nodes:
        assert services[node]["environment"]["NATS_ROUTE_PASSWORD"] == "routepw"
        assert "/data" in json.dumps(services[node]["volumes"])
    for name in SERVICES:
        env = services[name]["environment"]
        urls = env["NATS_URL"].split(",")
        assert urls == [f"nats://{name}:{name}pw@{n}:4222" for n in nodes]
        assert env["VALKEY_SENTINELS"] == ",".join(f"{s}:26379" for s in sentinels)
        assert env["MOSAIC_STREAM_REPLICAS"] == "3"
        depends = services[name]["depends_on"]
        assert depends["nats"]["condition"] == "service_healthy", name
    assert services["valkey-replica"]["environment"]["VALKEY_REPLICA_OF"] == "valkey"
    assert "appendonly" in json.dumps(services["valkey-replica"]["command"])
