"""Running the system here: ``up``, ``serve``, ``creds``, ``demo``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from mosaic.cli.common import home


def cmd_up(args: argparse.Namespace) -> int:
    """Start NATS, Valkey (unless NATS_URL / VALKEY_URL are set) and the five services."""
    from mosaic.embedded import EmbeddedServerError
    from mosaic.natsauth import redact
    from mosaic.spawners import any_ready, describe
    from mosaic.supervisor import Supervisor, SystemConfig, pick_gateway_port

    config = SystemConfig(
        home=home(args),
        nats_url=os.environ.get("NATS_URL"),
        valkey_url=os.environ.get("VALKEY_URL"),
        gateway_port=pick_gateway_port(args.port or int(os.environ.get("GATEWAY_PORT", 0))),
        cluster=3 if args.cluster else 0,
    )
    supervisor = Supervisor(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    supervisor.start()
    try:
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
        print("Press Ctrl-C to stop.")
        while not stop.wait(1.0):
            for name, proc in supervisor.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited ({proc.returncode}); restarting", file=sys.stderr)
                    supervisor.start_service(name)
            if config.cluster:  # a node rejoins its cluster with its data (docs/deploy.md)
                for name, server in supervisor.servers.items():
                    if server.proc.poll() is not None:
                        code = server.proc.returncode
                        print(f"{name} exited ({code}); restarting", file=sys.stderr)
                        try:
                            server.start_again()
                        except EmbeddedServerError as exc:
                            print(f"{name}: {exc}; trying again", file=sys.stderr)
    finally:
        print("Stopping…")
        supervisor.stop()
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
    up = sub.add_parser("up", help="start the embedded system (NATS, Valkey, five services)")
    up.add_argument("--port", type=int, help="gateway port (default 3001, or a free one)")
    up.add_argument(
        "--cluster",
        action="store_true",
        help="run three NATS nodes (streams with 3 replicas) and Valkey with a replica and "
        "three sentinels, all on this machine (docs/deploy.md, 'Cluster')",
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
