"""Each service of a real ``mosaic up`` holds only its own secrets; Valkey wants a password.

The system is started through ``Supervisor`` as ``mosaic up`` starts it, and each running
service's ``/proc/<pid>/environ`` is read: a secret's value (not just its name) must
appear in exactly the services ``mosaic.serviceenv.SERVICE_SECRETS`` grants it. The
Valkey refusal goes over a raw socket speaking RESP, so it is the server's own.
"""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from mosaic.embedded import free_port
from mosaic.supervisor import SERVICES, VALKEY_PASSWORD_FILE, Supervisor, SystemConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MODEL_KEY = "sk-ant-api03-only-spawner-and-gates-0123456789"
GIT_TOKEN = "ghp_onlyGitopsMayHoldThis0123456789abcdef"
STRAY = "stray-aws-secret-nobody-gets-0123456789"
HOLD_KEY = "mosaic:killall"
"""``StateStore.hold_all``'s key under the default prefix (shared/store.py)."""


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    home = tmp_path_factory.mktemp("secrets") / "home"
    home.mkdir()
    (home / "secrets").mkdir(mode=0o755)  # as an older release left it: tightened at start
    (home / "secrets").chmod(0o755)
    config = SystemConfig(
        home=home,
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "scripted",
            "MOSAIC_SANDBOX": "none",
            "ANTHROPIC_API_KEY": MODEL_KEY,
            "GITHUB_TOKEN": GIT_TOKEN,
            "AWS_SECRET_ACCESS_KEY": STRAY,
        },
    )
    with Supervisor(config) as supervisor:
        yield supervisor


def environ(supervisor: Supervisor, service: str) -> str:
    """The running process's environment as the kernel shows it."""
    pid = supervisor.procs[service].pid
    return Path(f"/proc/{pid}/environ").read_bytes().decode()


def holders(supervisor: Supervisor, value: str) -> set[str]:
    return {name for name in SERVICES if value in environ(supervisor, name)}


def test_each_secret_is_only_in_the_services_it_belongs_to(system: Supervisor) -> None:
    assert holders(system, system.tokens["MOSAIC_API_TOKEN"]) == {"gateway"}
    assert holders(system, system.tokens["MOSAIC_ADMIN_TOKEN"]) == {"gateway"}
    assert holders(system, MODEL_KEY) == {"spawner", "gates"}
    assert holders(system, GIT_TOKEN) == {"gitops"}
    assert holders(system, STRAY) == set()
    assert set(system.nats_passwords) == {"admin", *SERVICES}
    for user, password in system.nats_passwords.items():
        expected = {"gateway"} if user == "admin" else {user}  # kill-all goes as admin
        assert holders(system, password) == expected, user
    password = (system.config.home / "secrets" / VALKEY_PASSWORD_FILE).read_text().strip()
    assert holders(system, password) == {"gateway", "spawner", "killswitch"}


def test_non_secret_settings_still_reach_every_service(system: Supervisor) -> None:
    for name in SERVICES:
        env = dict(line.split("=", 1) for line in environ(system, name).split("\0") if "=" in line)
        assert env["MOSAIC_PROVIDER"] == "scripted", name
        assert env["MOSAIC_SANDBOX"] == "none", name
        assert env["MOSAIC_HOME"] == str(system.config.home), name
        assert env.get("PATH"), name


def raw_command(port: int, *words: str) -> bytes:
    """One RESP command over a fresh socket, without AUTH; the server's first reply."""
    body = f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words)
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.settimeout(5)
        sock.sendall(body)
        return sock.recv(4096)


def test_valkey_refuses_an_unauthenticated_client(system: Supervisor) -> None:
    port = system.servers["valkey"].port
    with Redis.from_url(system.valkey_url) as authed:
        authed.set(HOLD_KEY, b'{"reason": "secrets test"}')
        try:
            answer = raw_command(port, "DEL", HOLD_KEY)
            assert answer.startswith(b"-NOAUTH"), answer
            assert authed.exists(HOLD_KEY) == 1  # the hold survived the attempt
            assert raw_command(port, "AUTH", "wrong-password").startswith(b"-WRONGPASS")
        finally:
            authed.delete(HOLD_KEY)


def test_secrets_are_private_on_disk_and_off_the_command_line(system: Supervisor) -> None:
    home = system.config.home
    assert stat.S_IMODE((home / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "secrets" / "nats").stat().st_mode) == 0o700
    for name in (VALKEY_PASSWORD_FILE, "api-token", "admin-token", "nats/gateway"):
        assert stat.S_IMODE((home / "secrets" / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((home / "valkey" / "auth.conf").stat().st_mode) == 0o600
    password = (home / "secrets" / VALKEY_PASSWORD_FILE).read_text().strip()
    pid = system.servers["valkey"].proc.pid
    assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
