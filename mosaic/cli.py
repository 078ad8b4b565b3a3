"""``mosaic``: run the system embedded, serve one service, or run the demo."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from shared.settings import HomeSettings


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home) if args.home else HomeSettings().mosaic_home


def cmd_up(args: argparse.Namespace) -> int:
    """Start NATS, Valkey (unless NATS_URL / VALKEY_URL are set) and the five services."""
    from mosaic.supervisor import Supervisor, SystemConfig, pick_gateway_port

    config = SystemConfig(
        home=_home(args),
        nats_url=os.environ.get("NATS_URL"),
        valkey_url=os.environ.get("VALKEY_URL"),
        gateway_port=pick_gateway_port(args.port or int(os.environ.get("GATEWAY_PORT", 0))),
    )
    supervisor = Supervisor(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    supervisor.start()
    try:
        print(f"Mosaic is up. Gateway: {supervisor.gateway_url}")
        print(f"  NATS:    {supervisor.nats_url}")
        print(f"  Valkey:  {supervisor.valkey_url}")
        print(f"  Tokens:  {config.home / 'secrets'} (api-token, admin-token)")
        print(f"  Logs:    {supervisor.logs}")
        print("Press Ctrl-C to stop.")
        while not stop.wait(1.0):
            for name, proc in supervisor.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited ({proc.returncode}); restarting", file=sys.stderr)
                    supervisor.start_service(name)
    finally:
        print("Stopping…")
        supervisor.stop()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run one service in the foreground (same as ``python -m services.<name>``)."""
    import runpy

    runpy.run_module(f"services.{args.service}", run_name="__main__")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Create a demo repository, start the system, run three tasks, show the branches."""
    from mosaic.demo import run_demo

    return run_demo(_home(args))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its help texts are the CLI's documentation)."""
    parser = argparse.ArgumentParser(
        prog="mosaic", description="Mosaic Orchestrator: run Claude coding agents safely at scale."
    )
    parser.add_argument("--home", help="data directory (default: $MOSAIC_HOME or ~/.mosaic)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the embedded system (NATS, Valkey, five services)")
    up.add_argument("--port", type=int, help="gateway port (default 3001, or a free one)")
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=["gateway", "spawner", "gitops", "gates", "killswitch"])
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="run three demo tasks end to end and stop")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mosaic`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
