"""``POST /agents/check`` against a real gateway, a real gitops service on the same
nats-server, real git repositories and Valkey: each check fails for its own reason, one
task passes them all, and a check leaves the TASKS stream and the store as they were.
Spawner readiness is written with ``SpawnerRegistry`` as a spawner's heartbeat writes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from faststream.nats import NatsBroker

from services.gitops.app import create_app
from services.gitops.settings import GitOpsSettings
from shared import subjects
from shared.messages.base import utcnow
from shared.messages.checks import CHECK_NAMES, PreCheck
from shared.messages.spawners import SpawnerCapability
from shared.settings import NO_MODEL, GitSettings, HomeSettings, NatsSettings
from shared.spawners import SpawnerRegistry
from tests.conftest import git
from tests.integration.gateway.conftest import Gateway, spawn_body, start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
async def gitops(nats_url: str, tmp_path: Path) -> AsyncIterator[NatsBroker]:
    """The gitops service, answering ``mosaic.gitops.check`` as in a deployment."""
    app = create_app(
        NatsSettings(nats_url=nats_url),
        HomeSettings(mosaic_home=tmp_path / "gitops-home"),
        GitSettings(git_author_name="Check", git_author_email="check@test.invalid"),
        GitOpsSettings(network_timeout=20, local_timeout=20),
    )
    broker = app.broker
    assert isinstance(broker, NatsBroker)
    async with broker:
        await broker.start()
        yield broker


def capability(instance: str, *, ready: bool = True, sandbox: str = "bwrap") -> SpawnerCapability:
    now = utcnow()
    return SpawnerCapability(
        instance=instance,
        ready=ready,
        problems=[] if ready else [NO_MODEL],
        sandbox=sandbox,
        environment="host tools (bwrap)" if sandbox == "bwrap" else "image mosaic/sandbox:latest",
        provider="scripted" if ready else None,
        model="scripted" if ready else None,
        slots=2 if ready else 0,
        started_at=now,
        expires_at=now,
    )


async def ready_spawner(gateway: Gateway, **kw: Any) -> None:
    registry = SpawnerRegistry(gateway.store.redis, gateway.store.prefix)
    await registry.publish(capability("spawner-1", **kw), ttl_s=60)


def push_files(remote: Path, tmp: Path, files: dict[str, str], branch: str = "main") -> None:
    """Commit ``files`` onto ``branch`` of the bare ``remote`` (created from main)."""
    clone = tmp / f"edit-{len(list(tmp.glob('edit-*')))}"
    git(tmp, "clone", "-q", str(remote), str(clone))
    git(clone, "checkout", "-q", "-B", branch)
    for name, text in files.items():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text(text)
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-q", "-m", "edit")
    git(clone, "push", "-q", "origin", branch)


async def check(gateway: Gateway, body: dict[str, Any]) -> PreCheck:
    async with gateway.client() as http:
        answer = await http.post("/agents/check", json=body)
    assert answer.status_code == 200, answer.text
    return PreCheck.model_validate(answer.json())


def by_name(result: PreCheck) -> dict[str, tuple[bool, str]]:
    assert [c.name for c in result.checks] == list(CHECK_NAMES)
    return {c.name: (c.ok, c.detail) for c in result.checks}


async def snapshot(gateway: Gateway) -> tuple[int, dict[bytes, bytes | str]]:
    """The TASKS stream's message count and every store key of this gateway, with its type."""
    js = gateway.broker.connection.jetstream()
    info = await js.stream_info(subjects.TASKS_STREAM)
    redis = gateway.store.redis
    keys = [k async for k in redis.scan_iter(match=f"{gateway.store.prefix}:*")]
    return info.state.messages, {k: await redis.type(k) for k in sorted(keys)}


async def test_a_runnable_task_passes_every_check_and_nothing_is_queued_or_stored(
    gateway: Gateway, gitops: NatsBroker, remote_repo: Path, unique: str
) -> None:
    await ready_spawner(gateway)
    before = await snapshot(gateway)
    result = await check(gateway, spawn_body(remote_repo, f"ok-{unique}"))
    checks = by_name(result)
    assert result.ok, result.reason()
    assert checks["gates"] == (True, ".mosaic/gates.toml is valid")
    assert checks["image"] == (True, "bwrap: no image needed")
    assert checks["branch"][1].startswith("main at ")
    assert "scripted" in checks["provider"][1]
    assert await snapshot(gateway) == before  # nothing queued, nothing stored
    assert await gateway.store.agent_for_task(f"ok-{unique}") is None


async def test_an_unknown_repository_fails_the_repository_check(
    gateway: Gateway, gitops: NatsBroker, tmp_path: Path, unique: str
) -> None:
    await ready_spawner(gateway)
    before = await snapshot(gateway)
    result = await check(gateway, spawn_body(tmp_path / "nowhere.git", f"nr-{unique}"))
    checks = by_name(result)
    assert not result.ok
    assert checks["repository"][0] is False
    assert f"no repository at {tmp_path / 'nowhere.git'}" in checks["repository"][1]
    assert checks["branch"] == (False, "not checked: the repository check failed")
    assert checks["spawner"][0]  # the other checks still say their piece
    assert checks["intake"][0]
    assert await snapshot(gateway) == before


async def test_a_missing_branch_fails_the_branch_check(
    gateway: Gateway, gitops: NatsBroker, remote_repo: Path, unique: str
) -> None:
    await ready_spawner(gateway)
    body = spawn_body(remote_repo, f"nb-{unique}")
    body["context"]["branch"] = "release/9"
    checks = by_name(await check(gateway, body))
    assert checks["repository"][0] is True
    assert checks["branch"][0] is False
    assert "no branch 'release/9'" in checks["branch"][1]
    assert checks["gates"] == (False, "not checked: the branch check failed")


async def test_a_broken_gates_file_fails_the_gates_check_naming_the_key(
    gateway: Gateway, gitops: NatsBroker, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    await ready_spawner(gateway)
    push_files(remote_repo, tmp_path, {".mosaic/gates.toml": "[gates]\nlint = 5\n"}, "broken")
    body = spawn_body(remote_repo, f"bg-{unique}")
    body["context"]["branch"] = "broken"
    result = await check(gateway, body)
    checks = by_name(result)
    assert not result.ok
    assert checks["branch"][0] is True
    assert checks["gates"][0] is False
    assert ".mosaic/gates.toml is invalid: gates.lint" in checks["gates"][1]
    assert [c.name for c in result.failed()] == ["gates"]


async def test_a_held_intake_fails_the_intake_check(
    gateway: Gateway, gitops: NatsBroker, remote_repo: Path, unique: str
) -> None:
    await ready_spawner(gateway)
    await gateway.store.hold_all("incident 7", "http:admin")
    result = await check(gateway, spawn_body(remote_repo, f"h-{unique}"))
    ok, detail = by_name(result)["intake"]
    assert not ok
    assert "held by a kill-all (incident 7, http:admin" in detail
    assert "POST /agents/resume" in detail
    assert [c.name for c in result.failed()] == ["intake"]


async def test_no_ready_spawner_fails_the_spawner_and_provider_checks(
    gateway: Gateway, gitops: NatsBroker, remote_repo: Path, unique: str
) -> None:
    body = spawn_body(remote_repo, f"ns-{unique}")
    checks = by_name(await check(gateway, body))
    assert checks["spawner"][0] is False
    assert "no spawner is running" in checks["spawner"][1]
    await ready_spawner(gateway, ready=False)
    result = await check(gateway, body)
    checks = by_name(result)
    assert checks["spawner"] == (False, f"no spawner can run agents: {NO_MODEL}")
    assert checks["provider"][0] is False
    assert NO_MODEL in checks["provider"][1]
    assert checks["image"] == (False, "not checked: no spawner is ready")
    assert {c.name for c in result.failed()} == {"spawner", "provider", "image"}


async def test_environment_files_are_validated_and_need_a_docker_spawner(
    gateway: Gateway, gitops: NatsBroker, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    await ready_spawner(gateway)
    env = ".mosaic/environment.toml"
    push_files(remote_repo, tmp_path, {env: 'image = "debian:12"\nsetup = 3\n'}, "bad-env")
    push_files(remote_repo, tmp_path, {env: 'image = "debian:12"\nsetup = ["true"]\n'}, "env")
    body = spawn_body(remote_repo, f"env-{unique}")
    body["context"]["branch"] = "bad-env"
    checks = by_name(await check(gateway, body))
    assert checks["environment"][0] is False
    assert "setup" in checks["environment"][1]
    body["context"]["branch"] = "env"
    checks = by_name(await check(gateway, body))
    assert checks["environment"][0] is True
    assert checks["image"][0] is False  # declared, but the only spawner runs bwrap
    assert "needs the docker sandbox" in checks["image"][1]
    # a docker spawner's record, but no docker spawner process to answer for its images
    # (a real one answers in tests/docker/test_precheck_environment.py): fail closed
    await ready_spawner(gateway, sandbox="docker")
    checks = by_name(await check(gateway, body))
    assert checks["image"][0] is False
    assert checks["image"][1].startswith("not checked: no docker spawner of host")


async def test_a_known_task_id_fails_the_task_check(
    gateway: Gateway, gitops: NatsBroker, remote_repo: Path, unique: str
) -> None:
    await ready_spawner(gateway)
    async with gateway.client() as http:
        queued = await http.post("/agents/spawn", json=spawn_body(remote_repo, f"d-{unique}"))
    assert queued.status_code == 202, queued.text
    ok, detail = by_name(await check(gateway, spawn_body(remote_repo, f"d-{unique}")))["task"]
    assert not ok
    assert queued.json()["agentId"] in detail


async def test_malformed_bodies_get_the_spawn_422_and_a_token_is_required(
    gateway: Gateway, remote_repo: Path, unique: str
) -> None:
    async with gateway.client() as http:
        bad = spawn_body(remote_repo, f"m-{unique}", priority="5")  # strict, as spawn
        answer = await http.post("/agents/check", json=bad)
        assert answer.status_code == 422
        assert answer.json()["error"]["field"] == "priority"
        spawn = await http.post("/agents/spawn", json=bad)
        assert spawn.status_code == 422
        assert spawn.json()["error"] == answer.json()["error"]
    async with gateway.client(token=None) as anonymous:
        answer = await anonymous.post("/agents/check", json=spawn_body(remote_repo, "x"))
        assert answer.status_code == 401
    assert await gateway.store.agent_for_task(f"m-{unique}") is None


async def test_without_gitops_the_repository_checks_fail_and_say_why(
    nats_url: str, valkey_url: str, remote_repo: Path, unique: str
) -> None:
    gateway, server, task = await start_gateway(
        nats_url, valkey_url, f"ng{unique}", with_gitops=False
    )
    try:
        await ready_spawner(gateway)
        checks = by_name(await check(gateway, spawn_body(remote_repo, f"ng-{unique}")))
        for name in ("repository", "branch", "gates", "environment"):
            assert checks[name][0] is False
            assert "gitops did not answer" in checks[name][1]
        async with gateway.client() as http:  # nor is a task on a path nobody checked taken
            answer = await http.post("/agents/spawn", json=spawn_body(remote_repo, f"n-{unique}"))
        assert answer.status_code == 503, answer.text
        assert "no gitops answered" in answer.json()["error"]["message"]
        assert await gateway.store.agent_for_task(f"n-{unique}") is None
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
