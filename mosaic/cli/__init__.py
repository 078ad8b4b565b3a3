"""``mosaic``: run the system embedded, serve one service, run the demo, or talk to a
running gateway. One module per command group; each registers its own commands."""

from __future__ import annotations

import argparse
import sys

from mosaic.cli import agents, federation, operations, system


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its help texts are the CLI's documentation)."""
    parser = argparse.ArgumentParser(
        prog="mosaic", description="Mosaic Orchestrator: run Claude coding agents safely at scale."
    )
    parser.add_argument("--home", help="data directory (default: $MOSAIC_HOME or ~/.mosaic)")
    sub = parser.add_subparsers(dest="command", required=True)

    system.add_commands(sub)
    agents.add_commands(sub)
    operations.add_commands(sub)
    federation.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mosaic`` console script."""
    args = build_parser().parse_args(argv)
    from mosaic.client import ClientError
    from mosaic.supervisor import StartupError

    try:
        return int(args.func(args))
    except ClientError as exc:
        field = f" (field: {exc.field})" if exc.field else ""
        print(f"mosaic {args.command}: {exc}{field}", file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"mosaic {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
