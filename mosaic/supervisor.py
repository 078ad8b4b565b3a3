"""Runs the whole system as processes: embedded servers, then the five services.

``mosaic up``, ``mosaic demo`` and the end-to-end tests all start the system through
this one class, so tests run exactly what users run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats

from mosaic import natsauth
from mosaic.embedded import ServerProcess, free_port, start_nats, start_valkey
from mosaic.natscluster import NatsCluster, start_nats_cluster
from mosaic.secretfiles import ensure_secret, secrets_dir
from mosaic.serviceenv import service_environment
from mosaic.valkeyha import ValkeyReplicaSet, start_valkey_replica_set
from shared import subjects
from shared.natsurls import parse_nats_url

SERVICES = ("gitops", "gates", "killswitch", "spawner", "gateway")
HOST_SERVICES = ("gitops", "gates", "killswitch", "spawner")
"""What every host runs over its own workspace (``mosaic up --join``): the gateway runs
once, against the shared NATS and Valkey."""
_PR_SET_PDEATHSIG = 1


class StartupError(RuntimeError):
    """A server or service did not come up; the message says which and where its log is."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class SystemConfig:
    """Where the system keeps its data and which servers it talks to."""

    home: Path
    nats_url: str | None = None
    valkey_url: str | None = None
    gateway_port: int = 3001
    env: dict[str, str] = field(default_factory=dict)
    services: tuple[str, ...] = SERVICES
    nats_auth: bool = True
    """Run our own nats-server with per-service users (ignored when ``nats_url`` is given)."""
    cluster: int = 0
    """Nodes of our own NATS cluster (``mosaic up --cluster``: 3), with Valkey as a
    primary, a replica and three sentinels; 0 runs one nats-server and one Valkey."""
    host_id: str | None = None
    """``MOSAIC_HOST_ID`` of every service started here (None: the services' default,
    this machine's name). A joining host names itself; its probes ask its own instances."""


def ensure_tokens(home: Path) -> dict[str, str]:
    """API tokens from the environment, else generated once under ``<home>/secrets``."""
    tokens: dict[str, str] = {}
    for env, name in (("MOSAIC_API_TOKEN", "api-token"), ("MOSAIC_ADMIN_TOKEN", "admin-token")):
        given = os.environ.get(env)
        tokens[env] = given if given else ensure_secret(home, name)
    return tokens


VALKEY_PASSWORD_FILE = "valkey-password"  # noqa: S105 (a file name)
"""The embedded Valkey's password, under ``<home>/secrets`` (0600)."""
NATS_ROUTE_PASSWORD_FILE = "nats-route-password"  # noqa: S105 (a file name)
"""The password NATS cluster nodes authenticate their routes with (0600)."""


class Supervisor:
    """Starts, watches and stops the system; ``stop`` leaves no process behind."""

    def __init__(self, config: SystemConfig) -> None:
        self.config = config
        self.servers: dict[str, ServerProcess] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.tokens: dict[str, str] = {}
        self.nats_url = config.nats_url or ""
        """Where tools of this supervisor connect (with the admin's credentials under auth)."""
        self.nats_server_url = self.nats_url
        """The NATS server without credentials."""
        self.nats_passwords: dict[str, str] = {}
        """Per NATS user, when the supervisor runs nats-server with authorization."""
        self.valkey_url = config.valkey_url or ""
        """Where Valkey is; for the embedded server, with its password in it."""
        self.logs = config.home / "logs"
        self.nats_cluster: NatsCluster | None = None
        """The NATS nodes, when the supervisor runs a cluster."""
        self.valkey_group: ValkeyReplicaSet | None = None
        """The Valkey primary, replica and sentinels, when it runs them."""
        self.cluster_env: dict[str, str] = {}
        """Settings every service gets for the cluster (sentinels, stream replicas)."""

    @property
    def gateway_url(self) -> str:
        """Where the HTTP API listens."""
        return f"http://127.0.0.1:{self.config.gateway_port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start servers (unless URLs were given) and every service; wait until healthy."""
        home = self.config.home
        home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        secrets_dir(home)
        try:
            if self.nats_url:
                self._use_given_nats()
            else:
                self._start_nats()
            if not self.valkey_url:
                self._start_valkey()
            self.tokens = ensure_tokens(home)
            for name in self.config.services:
                self.start_service(name)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _start_nats(self) -> None:
        """Our own nats-server; with authorization unless ``config.nats_auth`` is off."""
        home = self.config.home
        if self.config.cluster:
            self._start_nats_cluster()
            return
        conf = natsauth.write_config(home) if self.config.nats_auth else None
        self.servers["nats"] = start_nats(
            home / "nats", config_file=conf, log_file=self.logs / "nats.log"
        )
        self.nats_server_url = f"nats://127.0.0.1:{self.servers['nats'].port}"
        self.nats_url = self.nats_server_url
        if conf is not None:
            self.nats_passwords = natsauth.ensure_passwords(home)
            natsauth.record_server(home, self.nats_server_url)
            self.nats_url = self.nats_url_for(natsauth.ADMIN)

    def _start_nats_cluster(self) -> None:
        """``config.cluster`` nodes with the same users on each; routes authenticate with
        a generated password (``<home>/secrets/nats-route-password``)."""
        home = self.config.home
        auth = ""
        if self.config.nats_auth:
            self.nats_passwords = natsauth.ensure_passwords(home)
            auth = natsauth.render_config(self.nats_passwords)
        cluster = start_nats_cluster(
            home / "nats-cluster",
            self.config.cluster,
            route_password=ensure_secret(home, NATS_ROUTE_PASSWORD_FILE),
            extra_config=auth,
            logs_dir=self.logs,
        )
        self.nats_cluster = cluster
        for node, server in zip(cluster.nodes, cluster.servers, strict=True):
            self.servers[f"nats-{node.name}"] = server
        self.nats_server_url = cluster.url
        self.nats_url = cluster.url
        self.cluster_env["MOSAIC_STREAM_REPLICAS"] = str(min(3, cluster.size))
        if self.nats_passwords:
            natsauth.record_server(home, cluster.url)
            self.nats_url = self.nats_url_for(natsauth.ADMIN)

    def _use_given_nats(self) -> None:
        """A NATS server given by URL (another host's, when joining): when the URL carries
        no credentials and ``<home>/secrets/nats`` holds the users' passwords (copied from
        the first host), each service connects as its own user, as on the first host."""
        folder = natsauth.passwords_dir(self.config.home)
        if "@" in self.nats_url or not folder.is_dir():
            return
        self.nats_server_url = self.nats_url
        self.nats_passwords = natsauth.ensure_passwords(self.config.home)
        self.nats_url = self.nats_url_for(natsauth.ADMIN)

    def _start_valkey(self) -> None:
        """Our own valkey-server, always with a password (generated once, 0600); in a
        cluster, a primary, a replica and three sentinels (``mosaic.valkeyha``)."""
        home = self.config.home
        password = ensure_secret(home, VALKEY_PASSWORD_FILE)
        if self.config.cluster:
            group = start_valkey_replica_set(home / "valkey-ha", password)
            self.valkey_group = group
            for i, sentinel in enumerate(group.sentinels, 1):
                self.servers[f"valkey-sentinel-{i}"] = sentinel
            for i, server in enumerate(group.data, 1):
                self.servers[f"valkey-{i}"] = server
            self.valkey_url = group.url
            self.cluster_env["VALKEY_SENTINELS"] = group.sentinel_addresses
            self.cluster_env["VALKEY_SENTINEL_MASTER"] = group.master_name
            return
        self.servers["valkey"] = start_valkey(
            home / "valkey", password=password, log_file=self.logs / "valkey.log"
        )
        self.valkey_url = f"redis://:{password}@127.0.0.1:{self.servers['valkey'].port}/0"

    def nats_url_for(self, user: str) -> str:
        """The NATS URL a NATS user connects with (the plain URL without authorization)."""
        if not self.nats_passwords:
            return self.nats_url
        return natsauth.url_for(self.nats_server_url, user, self.nats_passwords[user])

    def service_env(self, name: str) -> dict[str, str]:
        """The environment of one service (or ``<service>-<n>`` instance): the
        supervisor's without secrets, the settings below, and only the secrets
        ``mosaic.serviceenv.SERVICE_SECRETS`` grants it (its own NATS user...)."""
        service = service_of(name)
        inherited = {**os.environ, **self.config.env}
        credentials = {
            "NATS_URL": self.nats_url_for(service),
            "VALKEY_URL": self.valkey_url,
            **self.tokens,
        }
        if self.nats_passwords:
            credentials["NATS_ADMIN_URL"] = self.nats_url_for(natsauth.ADMIN)  # kill-all
        env = service_environment(service, inherited, credentials)
        env.update(self.cluster_env)
        env.update(
            MOSAIC_HOME=str(self.config.home),
            GATEWAY_PORT=str(self.config.gateway_port),
            PYTHONUNBUFFERED="1",
        )
        if self.config.host_id is not None:
            env["MOSAIC_HOST_ID"] = self.config.host_id
        return env

    def start_service(
        self, name: str, overrides: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start (or restart) one service as ``python -m services.<module>``.

        ``name`` is the service, or ``<service>-<n>`` for another instance of it;
        ``overrides`` replace entries of its environment (the chaos suite points one
        spawner's ``NATS_URL`` at a proxy it can cut).
        """
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{service_of(name)}"],
            env={**self.service_env(name), **(overrides or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def stop_service(self, name: str, sig: int = signal.SIGTERM, timeout: float = 25.0) -> None:
        """Signal one service and wait for it (SIGKILL after ``timeout``)."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def wait_healthy(self, timeout: float) -> None:
        """Block until the gateway answers /health and every service answers its probe."""
        deadline = time.monotonic() + timeout
        pending = set(self.procs)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                proc = self.procs[name]
                if proc.poll() is not None:
                    log = self.logs / f"{name}.log"
                    raise StartupError(f"{name} exited with code {proc.returncode}; see {log}")
                if self._healthy(name):
                    pending.discard(name)
            if pending:
                time.sleep(0.1)
        if pending:
            raise StartupError(
                f"not healthy after {timeout}s: {', '.join(sorted(pending))}; logs in {self.logs}"
            )

    def health(self) -> dict[str, Any]:
        """The gateway's ``GET /health`` (spawners, their sandbox and provider, warnings).

        Raises ``StartupError`` when it does not answer (for example when another process
        took the gateway's port between the choice and the bind)."""
        try:
            answer: dict[str, Any] = httpx.get(f"{self.gateway_url}/health", timeout=5).json()
        except (httpx.HTTPError, ValueError) as exc:
            log = self.logs / "gateway.log"
            raise StartupError(f"the gateway does not answer /health ({exc}); see {log}") from exc
        return answer

    def _healthy(self, name: str) -> bool:
        name = service_of(name)
        if name == "gateway":
            # whoami with this system's token, not just /health: another system's gateway
            # that took the port between the choice and the bind must not pass for ours
            token = self.tokens.get("MOSAIC_API_TOKEN", "")
            try:
                answer = httpx.get(
                    f"{self.gateway_url}/auth/whoami",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=1,
                )
            except httpx.HTTPError:
                return False
            return answer.status_code == 200
        return asyncio.run(self._probe(name))

    async def _probe(self, name: str) -> bool:
        try:
            nc = await nats.connect(
                **parse_nats_url(self.nats_url).connect_options(),
                connect_timeout=1,
                max_reconnect_attempts=0,
            )
        except Exception:
            return False
        try:
            host = self.config.host_id
            probe = subjects.health(name) if host is None else subjects.health_on(name, host)
            await nc.request(probe, b"", timeout=0.5)
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    def stop(self) -> None:
        """SIGTERM every service (they hand back in-flight work), then the servers."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 25
        for proc in self.procs.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def service_of(name: str) -> str:
    """The service an instance name runs: ``spawner-2`` runs ``spawner``."""
    return name.split("-", 1)[0]


def pick_gateway_port(requested: int | None) -> int:
    """The requested port, or 3001 when free, else any free port."""
    if requested:
        return requested
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 3001))
            return 3001
        except OSError:
            return free_port()
