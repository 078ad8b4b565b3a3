"""The common subset of ``.devcontainer/devcontainer.json``, as a ``Declaration``.

Read: ``image``, or ``build.dockerfile`` (+ ``build.context``, ``build.args``; the older
top-level ``dockerFile``/``context`` too), ``onCreateCommand``, ``updateContentCommand``
and ``postCreateCommand`` (in that order, as setup; each a string, a list (one command,
no shell) or an object of named commands), ``containerEnv`` and ``remoteEnv`` (env),
``remoteUser``/``containerUser`` (who the image runs as). Paths are relative to the
``.devcontainer`` directory, as VS Code reads them.

Refused, with the field named: ``features`` (they are fetched from a registry),
``dockerComposeFile``, and variables other than ``${containerWorkspaceFolder}`` and
``${containerWorkspaceFolderBasename}`` (``${localEnv:...}`` would copy the host's
environment, where secrets live). Everything else (editor customizations, ports,
``postStartCommand``) is about an interactive editor, not a build, and is ignored.
The file is JSON with comments and trailing commas, as the devcontainer spec allows.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from typing import Any

from shared.environments.declaration import DEVCONTAINER_FILE, Declaration, check_env
from shared.environments.errors import DeclarationError

WORKSPACE = "/workspace"
_LIFECYCLE = ("onCreateCommand", "updateContentCommand", "postCreateCommand")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ROOT_USERS = ("root", "0")


def strip_jsonc(text: str) -> str:
    """JSON from JSON-with-comments: ``//`` and ``/* */`` comments and trailing commas go."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
            continue
        else:
            out.append(ch)
        i += 1
    return _drop_trailing_commas("".join(out))


def _drop_trailing_commas(text: str) -> str:
    out: list[str] = []
    in_string = False
    escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == ",":
            rest = text[i + 1 :].lstrip()
            if rest[:1] in ("}", "]"):
                continue
        out.append(ch)
    return "".join(out)


def _fail(field: str, message: str) -> DeclarationError:
    return DeclarationError(f"{DEVCONTAINER_FILE}: {field}: {message}")


def _substitute(value: str, field: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "containerWorkspaceFolder":
            return WORKSPACE
        if name == "containerWorkspaceFolderBasename":
            return posixpath.basename(WORKSPACE)
        raise _fail(field, f"variable ${{{name}}} is not supported (only the container's)")

    return _VARIABLE.sub(one, value)


def _string(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(field, "must be a non-empty string")
    return _substitute(value, field)


def _path(base: str, value: str, field: str) -> str:
    """``value`` (relative to ``base``, the .devcontainer dir) as a repository path."""
    if value.startswith("/"):
        raise _fail(field, f"must be a relative path: {value!r}")
    norm = posixpath.normpath(posixpath.join(base, value))
    if norm == ".." or norm.startswith("../"):
        raise _fail(field, f"must stay inside the repository: {value!r}")
    return norm


def _commands(value: Any, field: str) -> list[str]:
    """A lifecycle command in any of its three forms, as shell command lines."""
    if isinstance(value, str):
        return [_substitute(value, field)] if value.strip() else []
    if isinstance(value, list):
        if not value or not all(isinstance(part, str) for part in value):
            raise _fail(field, "a list must be a non-empty list of strings (one command)")
        return [shlex.join(_substitute(part, field) for part in value)]
    if isinstance(value, dict):
        out: list[str] = []
        for name, command in value.items():  # run one after another, in the file's order
            out += _commands(command, f"{field}.{name}")
        return out
    raise _fail(field, "must be a string, a list of strings or an object of commands")


def _env(data: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for field in ("containerEnv", "remoteEnv"):
        table = data.get(field) or {}
        if not isinstance(table, dict):
            raise _fail(field, "must be an object of strings")
        for name, value in table.items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise _fail(f"{field}.{name}", "must be a string")
            env[name] = _substitute(value, f"{field}.{name}")
    try:
        return check_env(env)
    except ValueError as exc:
        raise _fail("containerEnv", str(exc)) from exc


def parse_devcontainer(raw: bytes) -> Declaration:
    """Parse ``.devcontainer/devcontainer.json``; ``DeclarationError`` names the field."""
    try:
        data = json.loads(strip_jsonc(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeclarationError(
            f"{DEVCONTAINER_FILE}: not valid JSON (with comments): {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise DeclarationError(f"{DEVCONTAINER_FILE}: must hold a JSON object")
    features = data.get("features")
    if features:
        names = ", ".join(sorted(features)) if isinstance(features, dict) else str(features)
        raise _fail(
            "features",
            f"devcontainer features are not supported (they are fetched from a registry): "
            f"{names}; install the same tools with a Dockerfile or postCreateCommand",
        )
    if data.get("dockerComposeFile"):
        raise _fail("dockerComposeFile", "docker compose environments are not supported")
    base = posixpath.dirname(DEVCONTAINER_FILE)
    image = _string(data, "image")
    build = data.get("build") or {}
    if not isinstance(build, dict):
        raise _fail("build", "must be an object")
    dockerfile = _string(build, "dockerfile") or _string(data, "dockerFile")
    context = _string(build, "context") or _string(data, "context") or "."
    args = build.get("args") or {}
    if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
        raise _fail("build.args", "must be an object of strings")
    if image and dockerfile:
        raise _fail("image, build.dockerfile", "set one of them, not both")
    if not image and not dockerfile:
        raise _fail("image", "needs image or build.dockerfile")
    setup: list[str] = []
    for field in _LIFECYCLE:
        if data.get(field) is not None:
            setup += _commands(data[field], field)
    user = _string(data, "remoteUser") or _string(data, "containerUser")
    if user in _ROOT_USERS:
        user = None  # agents never run as root: the image's non-root default is used
    return Declaration(
        source=DEVCONTAINER_FILE,
        raw=raw,
        image=image,
        dockerfile=_path(base, dockerfile, "build.dockerfile") if dockerfile else None,
        context=_path(base, context, "build.context") if dockerfile else ".",
        args={k: _substitute(v, f"build.args.{k}") for k, v in args.items()},
        setup=tuple(setup),
        env=_env(data),
        user=user,
    )
