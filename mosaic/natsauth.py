"""NATS users and permissions for the embedded server (``mosaic up``).

Each service connects as its own user and may publish and subscribe only what it needs;
only ``admin`` may publish ``mosaic.kill.all``, and only the spawner and the killswitch
(who move agents) may publish ``mosaic.events.>``, the live feed ``kill_and_wait`` trusts.
Every service may publish its finished spans on ``mosaic.traces.spans``; only the
gateway subscribes to them. Sandboxes get no NATS credentials at all.
Passwords are generated once under ``<home>/secrets/nats/<user>`` (0600) and written,
with the permissions, to ``<home>/nats/auth.conf`` (0600), which nats-server reads.

A service that only answers requests needs no publish right for them:
``allow_responses`` lets it answer the reply subject of a request it received. Each
service may publish its own ``mosaic.health.<service>``: its container's health probe
(``shared.healthcheck``) asks with the service's own credentials.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from mosaic.secretfiles import secrets_dir, write_private
from shared import subjects
from shared.audit import (
    AUDIT_PREFIX,
    AUDIT_STREAM,
    KIND_BUDGET_HOLD,
    KIND_GATE_SKIPPED,
    KIND_KILL,
    KIND_KILL_ALL,
    KIND_MERGE,
)

ADMIN = "admin"
SERVICE_USERS = ("gateway", "spawner", "gitops", "gates", "killswitch")
USERS = (ADMIN, *SERVICE_USERS)

_INBOX = "_INBOX.>"
_REPLIES = _INBOX
"""Every service may publish replies to inboxes, not only through ``allow_responses``:
a server grants that right for the requests it delivered itself, so in a cluster a
reply sent after the responder's connection moved to another node (its node died
mid-request) was refused there as a permissions violation, the requester waited out its
time-out (gitops: 120 s) and nats-py dropped the responder's connection again. Inbox
names are random and seen only by whoever got the request (and the subscribers of its
subject), so what this adds in practice is answering what it was asked, after a move."""
_TASKS = subjects.TASKS_STREAM


def _health(service: str) -> list[str]:
    """A service's probe subjects: any host's and its own host's."""
    return [subjects.health(service), f"{subjects.health(service)}.*"]


def _stream_admin(stream: str) -> list[str]:
    """Look up, create and update one stream (raise its replicas on a grown cluster;
    never delete or purge it)."""
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.CREATE.{stream}",
        f"$JS.API.STREAM.UPDATE.{stream}",
    ]


def _audit_write(*kinds: str) -> list[str]:
    return [f"{AUDIT_PREFIX}.{k}" for k in kinds] + _stream_admin(AUDIT_STREAM)


PERMISSIONS: dict[str, dict[str, list[str]]] = {
    ADMIN: {"publish": [">"], "subscribe": [">"]},
    "gateway": {
        "publish": [
            _REPLIES,
            subjects.TASKS_ALL,
            f"{subjects.KILL_AGENT_PREFIX}.*",
            subjects.KILL_RESUME,
            f"{subjects.HEALTH_PREFIX}.>",
            subjects.GATES_CHECK_ANY_HOST,  # POST /api/quality/check (the agent's host)
            subjects.gitops_any_host(subjects.GitOp.DIFF),  # GET /agents/{agentId}/diff
            subjects.GITOPS_CHECK,  # POST /agents/check
            subjects.GITOPS_REPOSITORY_EXISTS,  # POST /agents: a local repository path
            subjects.SPAWNER_ENVIRONMENT_CHECK_ANY_HOST,  # POST /agents/check (docker)
            subjects.TRACE_SPANS,  # its own spans (spawn, kill), collected by a gateway
            *_stream_admin(_TASKS),
            f"$JS.API.CONSUMER.INFO.{_TASKS}.*",
            f"{AUDIT_PREFIX}.>",  # resume and the federation's entries
            *_stream_admin(AUDIT_STREAM),
            f"$JS.API.CONSUMER.CREATE.{AUDIT_STREAM}",
            f"$JS.API.CONSUMER.CREATE.{AUDIT_STREAM}.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{AUDIT_STREAM}.*",
            f"$JS.API.CONSUMER.DELETE.{AUDIT_STREAM}.*",
        ],
        "subscribe": [subjects.EVENTS_ALL, subjects.TRACE_SPANS, _INBOX],
    },
    "spawner": {
        "publish": [
            _REPLIES,
            f"{subjects.EVENTS_PREFIX}.>",
            f"{subjects.GITOPS_PREFIX}.*.>",  # its host's gitops (and a crashed attempt's)
            subjects.GATES_CHECK_ANY_HOST,
            subjects.TRACE_SPANS,
            *_health("spawner"),
            *_stream_admin(_TASKS),
            f"$JS.API.CONSUMER.INFO.{_TASKS}.*",
            f"$JS.API.CONSUMER.CREATE.{_TASKS}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{_TASKS}.*",
            f"$JS.API.CONSUMER.MSG.NEXT.{_TASKS}.*",
            f"$JS.ACK.{_TASKS}.>",
            # a task JetStream gave up on: read it, fail it, drop it (services.spawner.exhausted)
            f"$JS.API.STREAM.MSG.GET.{_TASKS}",
            f"$JS.API.STREAM.MSG.DELETE.{_TASKS}",
            *_audit_write(KIND_BUDGET_HOLD),  # the charge that spent the day's budget
        ],
        "subscribe": [
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{_TASKS}.*",
            f"{subjects.KILL_AGENT_PREFIX}.*",
            subjects.KILL_ALL,
            subjects.KILL_RESUME,
            subjects.TASKS_ALL,
            subjects.REPO_PUSHED,
            subjects.SPAWNER_ENVIRONMENT_CHECK_ANY_HOST,
            *_health("spawner"),
            _INBOX,
        ],
    },
    "gitops": {
        "publish": [
            _REPLIES,
            *_health("gitops"),
            subjects.REPO_PUSHED,
            subjects.TRACE_SPANS,
            *_audit_write(KIND_MERGE),
        ],
        "subscribe": [f"{subjects.GITOPS_PREFIX}.>", *_health("gitops"), _INBOX],
    },
    "gates": {
        "publish": [
            _REPLIES,
            *_health("gates"),
            subjects.TRACE_SPANS,
            *_audit_write(KIND_GATE_SKIPPED),
        ],
        "subscribe": [subjects.GATES_CHECK_ANY_HOST, *_health("gates"), _INBOX],
    },
    "killswitch": {
        "publish": [
            _REPLIES,
            f"{subjects.EVENTS_PREFIX}.>",
            subjects.gitops_any_host(subjects.GitOp.WORKTREE_REMOVE),
            subjects.TRACE_SPANS,
            *_health("killswitch"),
            *_audit_write(KIND_KILL, KIND_KILL_ALL),
        ],
        "subscribe": [
            f"{subjects.KILL_AGENT_PREFIX}.*",
            subjects.KILL_ALL,
            *_health("killswitch"),
            _INBOX,
        ],
    },
}
"""Per user: the subjects it may publish and subscribe (NATS wildcards)."""


def passwords_dir(home: Path) -> Path:
    """Where the generated passwords live: ``<home>/secrets/nats``."""
    return home / "secrets" / "nats"


def ensure_passwords(home: Path) -> dict[str, str]:
    """Every user's password, generated once (0600) and read back after."""
    secrets_dir(home)  # 0700, also when this is the first secret written
    folder = passwords_dir(home)
    folder.mkdir(exist_ok=True, mode=0o700)
    out: dict[str, str] = {}
    for user in USERS:
        path = folder / user
        if not path.exists():
            write_private(path, secrets.token_hex(24))
        out[user] = path.read_text().strip()
    return out


def render_config(passwords: dict[str, str], log_file: Path | None = None) -> str:
    """The nats-server configuration: the users, their passwords and permissions."""
    lines = ["# Generated by mosaic (mosaic/natsauth.py); regenerated at every start.", ""]
    if log_file is not None:
        lines.append(f"log_file: {json.dumps(str(log_file))}")
    return "\n".join([*lines, *_authorization(lambda user: json.dumps(passwords[user]))])


def password_variable(user: str) -> str:
    """The environment variable with ``user``'s password in containers: ``NATS_<USER>_PASSWORD``."""
    return f"NATS_{user.upper()}_PASSWORD"


COMPOSE_CONFIG = Path(__file__).resolve().parents[1] / "containers" / "nats" / "auth.conf"
"""The NATS configuration compose runs: ``nats.conf`` plus these users (``render_compose``)."""


def render_compose() -> str:
    """``containers/nats/auth.conf``: the same users and permissions, each password read
    from the nats container's environment (``$NATS_<USER>_PASSWORD``, a nats-server
    variable reference), so the file holds no secret and is committed."""
    lines = [
        "# Generated by `python -m mosaic.natsauth` from mosaic/natsauth.py: do not edit.",
        "# compose.yaml runs nats-server with this file; the passwords come from the",
        "# environment (NATS_<USER>_PASSWORD; containers/compose-secrets.sh makes them).",
        'include "nats.conf"',
        "",
    ]
    return "\n".join([*lines, *_authorization(lambda user: f"${password_variable(user)}")])


def _authorization(password: Callable[[str], str]) -> list[str]:
    """The ``authorization`` block; ``password(user)`` is the config text of the password."""
    lines = ["authorization {", "  users = ["]
    for user in USERS:
        perms = PERMISSIONS[user]
        publish = {"allow": perms["publish"]} if perms["publish"] else {"deny": [">"]}
        body: dict[str, object] = {"publish": publish, "subscribe": {"allow": perms["subscribe"]}}
        if user != ADMIN:
            body["allow_responses"] = True
        permissions = json.dumps(body)
        lines.append(
            f'    {{"user": {json.dumps(user)}, "password": {password(user)}, '
            f'"permissions": {permissions}}}'
        )
    lines += ["  ]", "}", ""]
    return lines


def write_config(home: Path) -> Path:
    """Write ``<home>/nats/auth.conf`` (0600) from the passwords; returns its path."""
    path = home / "nats" / "auth.conf"
    write_private(path, render_config(ensure_passwords(home), home / "logs" / "nats.log"))
    return path


def url_for(server_url: str, user: str, password: str) -> str:
    """``nats://user:password@host:port`` from a server URL without credentials; for a
    cluster's comma-separated node list, each node with the credentials."""
    if "," in server_url:
        nodes = [part.strip() for part in server_url.split(",") if part.strip()]
        return ",".join(url_for(node, user, password) for node in nodes)
    parts = urlsplit(server_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme or "nats", netloc, "", "", ""))


def redact(url: str) -> str:
    """A NATS URL (or a comma-separated node list) with its password hidden, for printing."""
    if "," in url:
        return ",".join(redact(part.strip()) for part in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def server_file(home: Path) -> Path:
    """Where ``mosaic up`` notes the address of the NATS server it runs."""
    return home / "nats" / "server.json"


def record_server(home: Path, url: str) -> None:
    """Note the running embedded server's address (no credentials in it)."""
    write_private(server_file(home), json.dumps({"url": url}))


def user_url(home: Path, user: str, server_url: str | None = None) -> str:
    """The NATS URL with ``user``'s credentials, for the server ``mosaic up`` runs."""
    if user not in USERS:
        raise ValueError(f"unknown NATS user {user!r}; one of {', '.join(USERS)}")
    if server_url is None:
        path = server_file(home)
        if not path.exists():
            raise FileNotFoundError(f"no NATS server recorded in {path}: is `mosaic up` running?")
        server_url = str(json.loads(path.read_text())["url"])
    password = ensure_passwords(home)[user] if passwords_dir(home).exists() else None
    if password is None:
        raise FileNotFoundError(f"no NATS passwords under {passwords_dir(home)}")
    return url_for(server_url, user, password)


if __name__ == "__main__":  # regenerate containers/nats/auth.conf after a permission change
    COMPOSE_CONFIG.write_text(render_compose())
