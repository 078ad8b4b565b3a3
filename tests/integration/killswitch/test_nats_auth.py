"""NATS authorization as ``mosaic up`` runs it: only ``admin`` may publish kill-all.

One publish goes over a raw socket speaking the NATS protocol (CONNECT, PUB, PING), so
the refusal is the server's, not something our client library does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest

from mosaic.cli import main as mosaic_main
from mosaic.supervisor import Supervisor
from shared import subjects
from shared.settings import host_id
from shared.subjects import GitOp
from tests.integration.killswitch.helpers import (
    admin,
    sleeper,
    spawn,
    status,
    system,
    wait_state,
)


def on_host(operation: GitOp) -> str:
    """The subject of ``operation`` on this machine's host (the services' default)."""
    return subjects.gitops(host_id(), operation)


pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    with system(tmp_path_factory.mktemp("auth") / "home") as supervisor:
        yield supervisor


def raw_publish(url: str, subject: str, body: bytes) -> str:
    """CONNECT with the URL's user and password, PUB, PING; what the server answered."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 5) as s:
        s.settimeout(5)
        info = s.recv(4096).decode()
        assert info.startswith("INFO ")
        connect = {
            "verbose": False,
            "pedantic": False,
            "user": parts.username,
            "pass": parts.password,
            "name": "raw-socket-test",
            "lang": "raw",
            "version": "0",
            "protocol": 1,
        }
        s.sendall(f"CONNECT {json.dumps(connect)}\r\n".encode())
        s.sendall(f"PUB {subject} {len(body)}\r\n".encode() + body + b"\r\nPING\r\n")
        answer = b""
        deadline = time.monotonic() + 5
        while b"PONG" not in answer and b"-ERR" not in answer and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        time.sleep(0.2)
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            answer += s.recv(4096)
        return answer.decode()


def test_secrets_are_private_and_the_url_works(
    sup: Supervisor, capsys: pytest.CaptureFixture[str]
) -> None:
    home = sup.config.home
    conf = home / "nats" / "auth.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    for user in ("admin", "gateway", "spawner", "gitops", "gates", "killswitch"):
        assert stat.S_IMODE((home / "secrets" / "nats" / user).stat().st_mode) == 0o600
    assert mosaic_main(["--home", str(home), "creds", "nats", "--user", "admin"]) == 0
    url = capsys.readouterr().out.strip()
    assert url == sup.nats_url_for("admin")
    assert urlsplit(url).username == "admin"


async def test_wrong_password_and_no_credentials_are_refused(sup: Supervisor) -> None:
    for url in (sup.nats_server_url, sup.nats_server_url.replace("nats://", "nats://admin:x@")):
        with pytest.raises(Exception):  # noqa: B017,PT011 - nats raises various auth errors
            await nats.connect(
                url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False
            )


async def test_service_users_are_confined(sup: Supervisor) -> None:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(sup.nats_url_for("gitops"), error_cb=on_error)
    try:
        sub = await nc.subscribe(subjects.EVENTS_ALL)  # gitops has no business here
        await nc.flush()
        await nc.publish("mosaic.tasks.p01", b"{}")  # nor here
        await nc.flush()
        await nc.publish(subjects.KILL_ALL, b"")
        await nc.flush()
        await asyncio.sleep(0.3)
        refused = " ".join(str(e).lower() for e in errors)
        assert 'subscription to "mosaic.events.>"' in refused
        assert 'publish to "mosaic.tasks.p01"' in refused
        assert 'publish to "mosaic.kill.all"' in refused
        await sub.unsubscribe()
    finally:
        await nc.close()


def test_kill_all_from_a_service_user_is_refused_and_from_admin_kills(
    sup: Supervisor, remote_repo: Path, unique: str
) -> None:
    with admin(sup) as http:
        agent_id = spawn(http, remote_repo, f"auth-{unique}", sleeper(120))
        wait_state(http, [agent_id], {"running"}, timeout=60)
        for user in ("gateway", "spawner", "killswitch", "gates", "gitops"):
            answer = raw_publish(sup.nats_url_for(user), subjects.KILL_ALL, b'{"reason":"x"}')
            assert "Permissions Violation for Publish" in answer, (user, answer)
        time.sleep(1.5)
        assert status(http, agent_id)["state"] == "running"
        assert http.get("/agents/hold").json()["held"] is False

        body = json.dumps({"reason": "raw admin kill-all", "requestedBy": "ops"}).encode()
        answer = raw_publish(sup.nats_url_for("admin"), subjects.KILL_ALL, body)
        assert "-ERR" not in answer, answer
        assert "PONG" in answer, answer
        wait_state(http, [agent_id], {"killed"}, timeout=5)
        assert http.get("/agents/hold").json()["held"] is True
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            entries = http.get("/audit", params={"kind": "kill_all"}).json()
            if entries:
                break
            time.sleep(0.1)
        assert entries[0]["actor"] == "ops"
        assert entries[0]["reason"] == "raw admin kill-all"
        assert http.post("/agents/resume").json()["held"] is False


def test_sandbox_environment_holds_no_nats_credentials(sup: Supervisor) -> None:
    # local sandboxes get a scrubbed environment; the services' own hold only their user
    spawner_env = sup.service_env("spawner")
    assert urlsplit(spawner_env["NATS_URL"]).username == "spawner"
    assert "NATS_ADMIN_URL" not in spawner_env
    assert urlsplit(sup.service_env("gateway")["NATS_ADMIN_URL"]).username == "admin"
    assert os.environ.get("NATS_URL") is None or "admin" not in os.environ["NATS_URL"]


def test_only_the_spawner_and_killswitch_publish_agent_events(sup: Supervisor) -> None:
    """The live feed ``kill_and_wait`` trusts cannot be forged by the other services."""
    forged = json.dumps(
        {"agentId": "a1", "taskId": "t1", "kind": "state", "state": "killed", "seq": 9}
    ).encode()
    for user in ("gates", "gitops", "gateway"):
        answer = raw_publish(sup.nats_url_for(user), subjects.agent_events("x"), forged)
        assert "Permissions Violation for Publish" in answer, (user, answer)
    for user in ("spawner", "killswitch"):
        answer = raw_publish(sup.nats_url_for(user), subjects.agent_events("x"), forged)
        assert "-ERR" not in answer, (user, answer)
        assert "PONG" in answer, (user, answer)


def test_only_gitops_announces_pushes(sup: Supervisor) -> None:
    """``mosaic.repo.pushed`` puts text in running agents' tool results (the conflict
    forecast's note): no other service may forge it; spawners may only listen."""
    forged = json.dumps({"repository": "/r", "baseBranch": "main", "agentId": "x"}).encode()
    for user in ("gateway", "spawner", "gates", "killswitch"):
        answer = raw_publish(sup.nats_url_for(user), subjects.REPO_PUSHED, forged)
        assert "Permissions Violation for Publish" in answer, (user, answer)
    answer = raw_publish(sup.nats_url_for("gitops"), subjects.REPO_PUSHED, forged)
    assert "-ERR" not in answer, answer
    assert "PONG" in answer, answer


def test_the_gateway_may_ask_gitops_to_read_and_nothing_else(sup: Supervisor) -> None:
    """The agent page's diff and the pre-check are the gateway's gitops subjects: they
    read, and it cannot ask gitops to create, commit, push, remove or merge anything."""
    for subject in (on_host(GitOp.DIFF), subjects.GITOPS_CHECK):
        answer = raw_publish(sup.nats_url_for("gateway"), subject, b"{}")
        assert "-ERR" not in answer, answer
        assert "PONG" in answer, answer
    for subject in (
        on_host(GitOp.WORKTREE_CREATE),
        on_host(GitOp.COMMIT),
        on_host(GitOp.PUSH),
        on_host(GitOp.WORKTREE_REMOVE),
        on_host(GitOp.LAND),
        on_host(GitOp.CHANGES),
    ):
        answer = raw_publish(sup.nats_url_for("gateway"), subject, b"{}")
        assert "Permissions Violation for Publish" in answer, (subject, answer)


def test_only_the_gateway_asks_spawners_about_environments(sup: Supervisor) -> None:
    """``mosaic.spawner.environment.check`` makes a docker spawner read a cache repository
    and ask its Docker host about images (``POST /agents/check``): the gateway asks it,
    no other service may."""
    asked = json.dumps({"repoPath": "/r", "commit": "0" * 40}).encode()
    for user in ("spawner", "gitops", "gates", "killswitch"):
        answer = raw_publish(
            sup.nats_url_for(user), subjects.spawner_environment_check(host_id()), asked
        )
        assert "Permissions Violation for Publish" in answer, (user, answer)
    answer = raw_publish(
        sup.nats_url_for("gateway"), subjects.spawner_environment_check(host_id()), asked
    )
    assert "-ERR" not in answer, answer
    assert "PONG" in answer, answer
