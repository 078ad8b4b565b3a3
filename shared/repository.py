"""What a task's ``repository`` may be: a local path or a URL over a safe transport.

Checked at the edge (the HTTP body) so ``ext::`` commands, option injection and unknown
transports never reach git, and credentials in a URL (``https://user:token@host/...``)
are refused rather than stored in the task record, events and logs.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

SAFE_SCHEMES = frozenset({"file", "https", "ssh"})
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._/~-]+$")


def check_repository(value: str) -> str:
    """Return ``value`` if it names a repository we may clone, else raise ValueError."""
    if not value or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("must be non-empty, without spaces or control characters")
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    if "::" in value.split("/", 1)[0]:
        raise ValueError("transport helpers such as 'ext::' are not allowed")
    if value.startswith("/"):
        return value
    if _SCP_LIKE.match(value):
        return value
    parts = urlsplit(value)
    if parts.password is not None or (parts.scheme == "https" and parts.username is not None):
        # A token in the URL would be stored in the task record, events and git config.
        raise ValueError(
            "must not carry credentials (user:token@); configure git credentials on the "
            "gitops host instead"
        )
    if (parts.hostname or "").startswith("-") or parts.netloc.startswith("-"):
        raise ValueError("host must not start with '-' (ssh would read it as an option)")
    if parts.scheme in SAFE_SCHEMES and (parts.netloc or parts.scheme == "file") and parts.path:
        return value
    raise ValueError(
        "must be an absolute path or a URL with one of: " + ", ".join(sorted(SAFE_SCHEMES))
    )


def canonical_repository(value: str) -> str:
    """``value`` checked, in the one spelling the repository cache is keyed by."""
    check_repository(value)
    if value.startswith("/"):
        return str(PurePosixPath(value)).rstrip("/") or "/"
    if "://" in value:
        return value.rstrip("/")
    return value


def local_path(value: str) -> str | None:
    """The filesystem path of a local repository, or None for a remote one."""
    if value.startswith("/"):
        return value
    parts = urlsplit(value)
    return parts.path if parts.scheme == "file" else None
