"""``NATS_URL`` read as the list of a cluster's nodes.

``NATS_URL`` names one server or every node of a cluster, comma-separated
(``nats://user:pw@n1:4222,nats://user:pw@n2:4222``). Clients get the node list with the
credentials taken out and passed as options: nats-py adds the nodes a server announces
(its ``connect_urls``) to its pool without credentials, and reconnecting to one of those
must still authenticate; a credential in the URL is used for only that URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit


class NatsUrlError(ValueError):
    """``NATS_URL`` is empty or its nodes disagree on the credentials."""


@dataclass(frozen=True)
class NatsServers:
    """The nodes to connect to (no credentials in them) and the credentials."""

    servers: tuple[str, ...]
    user: str | None = None
    password: str | None = None

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``: ``servers``, and ``user``/``password``."""
        options: dict[str, Any] = {"servers": list(self.servers)}
        if self.user is not None and self.password is None:
            options["token"] = self.user  # nats://<token>@host, as nats-py reads it
        elif self.user is not None:
            options["user"] = self.user
            options["password"] = self.password
        return options


def parse_nats_url(url: str) -> NatsServers:
    """Split ``NATS_URL`` into nodes and credentials; every node must carry the same
    credentials (or none), else ``NatsUrlError`` names the setting."""
    parts = [part.strip() for part in url.split(",") if part.strip()]
    if not parts:
        raise NatsUrlError("NATS_URL is empty: give one server or the nodes, comma-separated")
    servers: list[str] = []
    credentials: set[tuple[str | None, str | None]] = set()
    for part in parts:
        split = urlsplit(part if "://" in part else f"nats://{part}")
        if not split.hostname:
            raise NatsUrlError(f"NATS_URL: no host in {_redact(part)!r}")
        user = unquote(split.username) if split.username is not None else None
        password = unquote(split.password) if split.password is not None else None
        credentials.add((user, password))
        host = f"[{split.hostname}]" if ":" in split.hostname else split.hostname
        netloc = f"{host}:{split.port}" if split.port else host
        servers.append(urlunsplit((split.scheme, netloc, "", "", "")))
    if len(credentials) > 1:
        raise NatsUrlError("NATS_URL: the nodes carry different credentials; give the same user")
    user, password = credentials.pop()
    return NatsServers(tuple(servers), user, password)


def _redact(part: str) -> str:
    split = urlsplit(part)
    if split.password is None:
        return part
    return part.replace(split.password, "***")
