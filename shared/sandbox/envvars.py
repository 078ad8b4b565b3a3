"""The environment a sandboxed command sees: an allowlist, never a key or token.

Every backend builds its commands' environment from nothing: its own base (``PATH``,
``HOME``, ``LANG``...) plus ``SandboxSpec.env``, the repository's declared non-secret
variables. Nothing is inherited from the spawner, whose environment holds the model key
and tokens. ``SandboxSpec.env`` may set ``PATH`` (an environment often extends it) and
anything else except the sandbox's own names (``HOME``, ``TMPDIR``, ``MOSAIC_*``), and
a name that looks like a secret is refused rather than passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from shared.sandbox.base import SandboxError, SandboxSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RESERVED = frozenset({"HOME", "TMPDIR", "MOSAIC_AGENT_ID", "MOSAIC_TASK_ID"})
"""Set by the sandbox itself; a declared environment may not change them."""
SECRET_WORDS = frozenset(
    {"KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS"}
)
"""A name with one of these words (split on ``_``) is taken for a secret and refused."""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def looks_secret(name: str) -> bool:
    """Whether ``name`` reads like a key, token or password (``ANTHROPIC_API_KEY``...)."""
    return any(word in SECRET_WORDS for word in name.upper().split("_"))


def checked_extra(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The spec's extra variables, or ``SandboxError`` naming the first one refused."""
    extra: dict[str, str] = {}
    for name, value in pairs:
        if not _NAME.match(name) or "\x00" in value:
            raise SandboxError(f"invalid environment variable for the sandbox: {name!r}")
        if name in RESERVED or name.startswith("MOSAIC_"):
            raise SandboxError(f"the sandbox sets {name} itself; an environment may not")
        if looks_secret(name):
            raise SandboxError(
                f"{name} looks like a secret; secrets never enter a sandbox (rename it if not)"
            )
        extra[name] = value
    return extra


def sandbox_env(base: Mapping[str, str], pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``base`` with the checked extra variables on top (the whole environment)."""
    return {**base, **checked_extra(pairs)}


def command_env(spec: SandboxSpec, *, path: str, home: str, tmpdir: str) -> dict[str, str]:
    """The whole environment of a host-process backend's commands (``none``, ``bwrap``)."""
    base = {
        "PATH": path,
        "HOME": home,
        "TMPDIR": tmpdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",  # as in docker: no __pycache__ left for the commit
        "MOSAIC_AGENT_ID": spec.agent_id,
        "MOSAIC_TASK_ID": spec.task_id,
    }
    return sandbox_env(base, spec.env)
