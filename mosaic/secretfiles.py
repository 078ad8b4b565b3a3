"""Generated secrets of ``mosaic up`` under ``<home>/secrets``: the folder 0700, files 0600.

Every secret the embedded system makes for itself (API tokens, NATS passwords, the
Valkey password) is written here once and read back at every start, so a restart keeps
the same credentials. The folder is tightened to 0700 even when something else (an older
release, ``mkdir -p``) created it with a looser mode.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def secrets_dir(home: Path) -> Path:
    """``<home>/secrets``, created (or tightened) to mode 0700."""
    folder = home / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    return folder


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (its folder 0700 when created here)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def ensure_secret(home: Path, name: str, nbytes: int = 24) -> str:
    """The secret ``<home>/secrets/<name>``, generated (hex, 0600) the first time."""
    path = secrets_dir(home) / name
    if not path.exists():
        write_private(path, secrets.token_hex(nbytes))
    path.chmod(0o600)
    return path.read_text().strip()
