"""Running the system here: ``up``, ``serve``, ``creds``, ``demo``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from mosaic.cli.common import home

if TYPE_CHECKING:
    from mosaic.supervisor import Supervisor


def _host_id(args: argparse.Namespace) -> str | None:
    """``--host-id`` (or ``MOSAIC_HOST_ID``) checked; None when neither is given."""
    from pydantic import ValidationError

    from shared.settings import HostSettings

    given = args.host_id or os.environ.get("MOSAIC_HOST_ID") or None
    if given is None:
        return None
    try:
        return HostSettings(mosaic_host_id=given).mosaic_host_id
    except ValidationError as exc:
        raise SystemExit(f"mosaic up: --host-id: {exc.errors()[0]['msg']}") from exc


def cmd_up(args: argparse.Namespace) -> int:
    """Start NATS, Valkey (unless NATS_URL / VALKEY_URL are set) and the five services;
    with ``--join``, only this host's services against the first host's NATS and Valkey."""
    from mosaic.natsauth import redact
    from mosaic.spawners import any_ready, describe
    from mosaic.supervisor import (
        HOST_SERVICES,
        SERVICES,
        Supervisor,
        SystemConfig,
        pick_gateway_port,
    )

    nats_url = args.nats or os.environ.get("NATS_URL")
    valkey_url = args.valkey or os.environ.get("VALKEY_URL")
    host_id = _host_id(args)
    if args.join and (not nats_url or not valkey_url or host_id is None):
        print(
            "mosaic up --join: give the first host's servers and this host's id: "
            "--nats URL --valkey URL --host-id ID (or NATS_URL, VALKEY_URL, MOSAIC_HOST_ID)",
            file=sys.stderr,
        )
        return 2
    config = SystemConfig(
        home=home(args),
        nats_url=nats_url,
        valkey_url=valkey_url,
        gateway_port=pick_gateway_port(args.port or int(os.environ.get("GATEWAY_PORT", 0))),
        cluster=3 if args.cluster else 0,
        services=HOST_SERVICES if args.join else SERVICES,
        host_id=host_id,
    )
    supervisor = Supervisor(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    supervisor.start()
    try:
        if args.join:
            print(f"Host {host_id} joined: {', '.join(HOST_SERVICES)} over {config.home}")
            print(f"  NATS:    {redact(supervisor.nats_url)}")
            print(f"  Valkey:  {redact(supervisor.valkey_url)}")
            print(f"  Logs:    {supervisor.logs}")
            return _watch(supervisor, stop)
        print(f"Mosaic is up. Gateway: {supervisor.gateway_url}")
        print(f"  NATS:    {redact(supervisor.nats_url)}  (mosaic creds nats --user admin)")
        print(f"  Valkey:  {redact(supervisor.valkey_url)}")
        if supervisor.valkey_group is not None:
            print(f"  Sentinels: {supervisor.valkey_group.sentinel_addresses} (primary + replica)")
        secrets = "api-token, admin-token, valkey-password" + (
            ", nats-route-password" if config.cluster else ""
        )
        print(f"  Secrets: {config.home / 'secrets'} ({secrets})")
        print(f"  Logs:    {supervisor.logs}")
        health = supervisor.health()
        for line in describe(health):
            print(line if line.startswith("WARNING") else f"  Spawner: {line}")
        if not any_ready(health):
            print(
                "No spawner can run agents: POST /agents/spawn answers 503 until what is "
                "named above is installed or set (a sandbox is noticed when it starts "
                "working; a model setting needs `mosaic up` again).",
                file=sys.stderr,
            )
        return _watch(supervisor, stop, config.cluster)
    finally:
        print("Stopping…")
        supervisor.stop()


def _watch(supervisor: Supervisor, stop: threading.Event, cluster: int = 0) -> int:
    """Restart any service that exits, and with a cluster any server (a node rejoins its
    cluster with its data: docs/deploy.md), until Ctrl-C or SIGTERM."""
    from mosaic.embedded import EmbeddedServerError

    print("Press Ctrl-C to stop.")
    while not stop.wait(1.0):
        for name, proc in supervisor.procs.items():
            if proc.poll() is not None:
                print(f"{name} exited ({proc.returncode}); restarting", file=sys.stderr)
                supervisor.start_service(name)
        if not cluster:
            continue
        for name, server in supervisor.servers.items():
            if server.proc.poll() is not None:
                print(f"{name} exited ({server.proc.returncode}); restarting", file=sys.stderr)
                try:
                    server.start_again()
                except EmbeddedServerError as exc:
                    print(f"{name}: {exc}; trying again", file=sys.stderr)
    return 0


def cmd_creds_nats(args: argparse.Namespace) -> int:
    """Print the NATS URL with a user's credentials (for ``nats --server``)."""
    from mosaic.natsauth import user_url

    try:
        print(user_url(home(args), args.user, args.server))
    except (FileNotFoundError, ValueError) as exc:
        print(f"mosaic creds nats: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run one service in the foreground (same as ``python -m services.<name>``)."""
    import runpy

    runpy.run_module(f"services.{args.service}", run_name="__main__")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Create a demo repository, start the system, run three tasks, show the branches."""
    from mosaic.demo import run_demo

    return run_demo(home(args))


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser(
        "up",
        help="start the embedded system (NATS, Valkey, five services), or join a host to one",
        description="Start NATS, Valkey and the five services on this machine; with --join, "
        "start only this host's services (spawner, gitops, gates, killswitch) over its own "
        "MOSAIC_HOME against the first host's NATS and Valkey (docs/deploy.md, Many hosts).",
    )
    up.add_argument("--port", type=int, help="gateway port (default 3001, or a free one)")
    up.add_argument(
        "--cluster",
        action="store_true",
        help="run three NATS nodes (streams with 3 replicas) and Valkey with a replica and "
        "three sentinels, all on this machine (docs/deploy.md, 'Cluster')",
    )
    up.add_argument(
        "--join",
        action="store_true",
        help="join a running system as another host: only spawner, gitops, gates and "
        "killswitch, no servers, no gateway (needs --nats, --valkey and --host-id)",
    )
    up.add_argument(
        "--host-id",
        help="this host's id, one NATS token of [a-z0-9_-] (default MOSAIC_HOST_ID, else "
        "the machine's name)",
    )
    up.add_argument(
        "--nats",
        metavar="URL",
        help="the NATS server to use (default NATS_URL; without credentials in it, each "
        "service connects as its own user with the passwords under MOSAIC_HOME/secrets/nats)",
    )
    up.add_argument(
        "--valkey",
        metavar="URL",
        help="the Valkey server to use, password in the URL (default VALKEY_URL)",
    )
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=["gateway", "spawner", "gitops", "gates", "killswitch"])
    serve.set_defaults(func=cmd_serve)

    creds = sub.add_parser("creds", help="print credentials of the embedded system")
    creds_sub = creds.add_subparsers(dest="what", required=True)
    creds_nats = creds_sub.add_parser(
        "nats", help="the NATS URL with a user's credentials, for `nats --server`"
    )
    creds_nats.add_argument(
        "--user", default="admin", help="admin (default) or a service: gateway, spawner, …"
    )
    creds_nats.add_argument(
        "--server", help="server URL without credentials (default: the one `mosaic up` runs)"
    )
    creds_nats.set_defaults(func=cmd_creds_nats)

    demo = sub.add_parser("demo", help="run three demo tasks end to end and stop")
    demo.set_defaults(func=cmd_demo)
