"""What every client command shares: where the data lives, the token, the client, output."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from shared.settings import HomeSettings

if TYPE_CHECKING:
    from mosaic.client import MosaicClient

DEFAULT_URL = "http://127.0.0.1:3001"


def home(args: argparse.Namespace) -> Path:
    return Path(args.home) if args.home else HomeSettings().mosaic_home


def token(args: argparse.Namespace, admin: bool = False) -> str | None:
    """--token, else $MOSAIC_TOKEN, else the token file ``mosaic up`` wrote."""
    if args.token:
        return str(args.token)
    if os.environ.get("MOSAIC_TOKEN"):
        return os.environ["MOSAIC_TOKEN"]
    path = home(args) / "secrets" / ("admin-token" if admin else "api-token")
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def connect(args: argparse.Namespace, admin: bool = False) -> MosaicClient:
    from mosaic.client import MosaicClient

    return MosaicClient(args.url, token(args, admin), timeout=args.timeout)


def print_json(value: object) -> None:
    from pydantic import BaseModel

    def plain(item: object) -> object:
        return item.model_dump(mode="json", by_alias=True) if isinstance(item, BaseModel) else item

    data = [plain(v) for v in value] if isinstance(value, list) else plain(value)
    print(json.dumps(data, indent=2))


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def client_options(timeout: float, admin_for: str) -> argparse.ArgumentParser:
    """The options of every command that talks to a gateway (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("MOSAIC_URL", DEFAULT_URL),
        help=f"gateway URL (default: $MOSAIC_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--token",
        help="bearer token (default: $MOSAIC_TOKEN, else $MOSAIC_HOME/secrets/api-token, "
        f"admin-token for {admin_for})",
    )
    common.add_argument("--timeout", type=float, default=timeout, help="HTTP timeout in seconds")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    return common
