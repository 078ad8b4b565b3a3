"""Which service holds which secret (the one table), and the environment each one gets.

``mosaic up`` used to hand its whole environment, plus both HTTP tokens, to every
service: the admin token and the model key sat in every service's
``/proc/<pid>/environ``. Now each service's environment is built by one rule:

- everything the supervisor inherited (``PATH``, ``HOME``, ``LANG``, URLs, ``MOSAIC_*``
  and the other knobs) passes, **except** a name that holds a secret: one that looks
  like a secret (``shared.sandbox.envvars.looks_secret``: ``*_KEY``, ``*_TOKEN``,
  ``*_PASSWORD``...) or one of ``CREDENTIAL_CARRIERS`` (URLs with a password in them);
- plus the secrets ``SERVICE_SECRETS`` grants that service, and nothing else.

compose.yaml follows the same table (tests/unit/test_compose_secrets.py checks it).
Under ``mosaic up`` the services share one uid, so this keeps each secret out of the
processes (and their children: git, gate commands) that have no use for it; the wall
between services is the containers of compose (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.sandbox.envvars import looks_secret

MODEL_KEY = ("ANTHROPIC_API_KEY", "CLAUDE_API_KEY")
"""The model key (either name): the spawner's agents and the gates' AI reviewer."""

SERVICE_SECRETS: dict[str, frozenset[str]] = {
    # NATS_URL carries each service's own NATS user and password (mosaic/natsauth.py)
    "gateway": frozenset(
        {
            "NATS_URL",
            "NATS_ADMIN_URL",  # kill-all goes out as the NATS admin (shared/kill_orders.py)
            "VALKEY_URL",
            "MOSAIC_API_TOKEN",
            "MOSAIC_ADMIN_TOKEN",
        }
    ),
    "spawner": frozenset({"NATS_URL", "VALKEY_URL", *MODEL_KEY}),
    "gates": frozenset({"NATS_URL", *MODEL_KEY}),
    # the one service that talks to remotes: a credential helper or ssh agent of the
    # operator's may need these
    "gitops": frozenset({"NATS_URL", "GH_TOKEN", "GITHUB_TOKEN", "SSH_AUTH_SOCK"}),
    "killswitch": frozenset({"NATS_URL", "VALKEY_URL"}),
}
"""Per service, every secret it may hold; a secret not named here for it never reaches it."""

CREDENTIAL_CARRIERS = frozenset(
    {"NATS_URL", "NATS_ADMIN_URL", "VALKEY_URL", "MOSAIC_HEALTH_NATS_URL", "SSH_AUTH_SOCK"}
)
"""Names that do not look like secrets but carry one (a password in a URL, an agent)."""


def holds_secret(name: str) -> bool:
    """Whether the variable ``name`` is (or carries) a secret, so is never inherited."""
    return name.upper() in CREDENTIAL_CARRIERS or looks_secret(name)


def service_environment(
    service: str, inherited: Mapping[str, str], credentials: Mapping[str, str]
) -> dict[str, str]:
    """The environment of ``service``: ``inherited`` without secrets, then the secrets
    the table grants it, taken from ``credentials`` (the supervisor's, per service) or
    else from ``inherited``."""
    allowed = SERVICE_SECRETS[service]
    env = {k: v for k, v in inherited.items() if not holds_secret(k)}
    for name in sorted(allowed):
        if name in credentials:
            env[name] = credentials[name]
        elif name in inherited:
            env[name] = inherited[name]
    return env
