"""What a repository declares about its environment, from whichever file it uses.

Sources, first found wins (all read at the task's base commit):

1. ``.mosaic/environment.toml``: ``image``, ``setup``, ``inputs``, ``env``, or
   ``dockerfile`` (+ ``context``, ``args``) instead of ``image``;
2. ``.devcontainer/devcontainer.json``: its common subset (see ``devcontainer.py``);
3. nothing: the sandbox image is the environment.

Every source becomes one ``Declaration``; the rest of the package knows no file format.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.environments.errors import DeclarationError

MOSAIC_FILE = ".mosaic/environment.toml"
DEVCONTAINER_FILE = ".devcontainer/devcontainer.json"
Source = Literal[".mosaic/environment.toml", ".devcontainer/devcontainer.json"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_WORDS = frozenset(
    {"SECRET", "SECRETS", "TOKEN", "TOKENS", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS"}
)
_KEY_QUALIFIERS = frozenset({"API", "ACCESS", "PRIVATE", "SECRET", "SIGNING"})
_RESERVED_PREFIXES = ("MOSAIC_", "ANTHROPIC_")
_SECRET_VALUE = re.compile(
    r"(sk-ant-[A-Za-z0-9_-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
)


def _relative(value: str, field: str) -> str:
    """A normalised path inside the repository; refuses absolute and escaping paths."""
    if not value or value.startswith("/") or "\\" in value or "\0" in value:
        raise ValueError(f"{field} must be a relative path inside the repository: {value!r}")
    norm = posixpath.normpath(value)
    if norm == ".." or norm.startswith("../"):
        raise ValueError(f"{field} must stay inside the repository: {value!r}")
    return norm


def _looks_secret(name: str) -> bool:
    """``GITHUB_TOKEN``, ``DB_PASSWORD``, ``OPENAI_API_KEY``; not ``TOKENIZERS_PARALLELISM``."""
    words = name.upper().split("_")
    if _SECRET_WORDS.intersection(words) or "APIKEY" in words:
        return True
    return any(a in _KEY_QUALIFIERS and b == "KEY" for a, b in itertools.pairwise(words))


def check_env(env: dict[str, str]) -> dict[str, str]:
    """Non-secret environment only: a secret must never be written into a repository."""
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"env name {name!r} is not a valid variable name")
        if name.upper().startswith(_RESERVED_PREFIXES):
            raise ValueError(f"env name {name!r} is reserved for Mosaic's own settings")
        if _looks_secret(name):
            raise ValueError(
                f"env name {name!r} looks like a secret; the environment is for non-secret "
                "settings only (agents never receive secrets)"
            )
        if _SECRET_VALUE.search(value):
            raise ValueError(f"env {name!r} holds what looks like a secret value")
    return env


class Declaration(BaseModel):
    """One repository's environment, whatever file it came from.

    ``image`` is the base (None: the sandbox image) unless ``dockerfile`` is set, when the
    base is built from that Dockerfile with ``context`` and ``args``. ``setup`` runs on
    top of the base, as root, with network, in a copy of the repository at ``/workspace``.
    ``inputs`` are globs of files whose content joins the cache key. ``user`` is who the
    image runs as (devcontainer ``remoteUser``); never root.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source
    raw: bytes = Field(repr=False)
    """The declaration file's bytes, part of the cache key."""
    image: str | None = None
    dockerfile: str | None = None
    context: str = "."
    args: dict[str, str] = {}
    setup: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    env: dict[str, str] = {}
    user: str | None = None


class _MosaicFile(BaseModel):
    """The schema of ``.mosaic/environment.toml`` (unknown keys are an error: a typo of
    ``setup`` must not silently build an environment without it)."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(default=None, min_length=1)
    dockerfile: str | None = None
    context: str | None = None
    args: dict[str, str] = {}
    setup: list[str] = []
    inputs: list[str] = []
    env: dict[str, str] = {}

    @field_validator("dockerfile", "context")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        return None if value is None else _relative(value, "path")

    @field_validator("inputs")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        for pattern in value:
            _relative(pattern.replace("*", "x").replace("?", "x"), "inputs")
        return value

    @field_validator("setup")
    @classmethod
    def _commands(cls, value: list[str]) -> list[str]:
        if any(not command.strip() for command in value):
            raise ValueError("setup commands must not be empty")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env(value)


def describe(error: ValidationError, source: str) -> str:
    """One line per problem, each naming the file and the field."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(file)"
        problems.append(f"{source}: {where}: {item['msg']}")
    return "; ".join(problems)


def parse_mosaic(raw: bytes) -> Declaration:
    """Parse ``.mosaic/environment.toml``; ``DeclarationError`` names file and field."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DeclarationError(f"{MOSAIC_FILE}: not valid TOML: {exc}") from exc
    try:
        parsed = _MosaicFile.model_validate(data)
    except ValidationError as exc:
        raise DeclarationError(describe(exc, MOSAIC_FILE)) from exc
    if parsed.image is not None and parsed.dockerfile is not None:
        raise DeclarationError(f"{MOSAIC_FILE}: image, dockerfile: set one of them, not both")
    if parsed.dockerfile is None and (parsed.context is not None or parsed.args):
        raise DeclarationError(f"{MOSAIC_FILE}: context, args: only with dockerfile")
    return Declaration(
        source=MOSAIC_FILE,
        raw=raw,
        image=parsed.image,
        dockerfile=parsed.dockerfile,
        context=parsed.context or ".",
        args=parsed.args,
        setup=tuple(parsed.setup),
        inputs=tuple(parsed.inputs),
        env=parsed.env,
    )
