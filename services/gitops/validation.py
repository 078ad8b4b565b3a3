"""Input checks done before anything touches disk, so bad input leaves nothing behind."""

from __future__ import annotations

import re
from pathlib import Path

from services.gitops.errors import InvalidBranchError, InvalidRepositoryError, InvalidRequestError
from services.gitops.safety import GitRunner
from shared.ids import id_problem

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._~-]+@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?!//)(.+)$")
_ALLOWED_SCHEMES = {"file", "https", "ssh"}
_URL_HOST = re.compile(r"^[a-z+]+://(?:[^/@]*@)?(?P<host>[^/:]*)")


def validate_id(kind: str, value: str) -> str:
    """An agent or task id usable in a branch name and a directory name (``shared.ids``)."""
    problem = id_problem(value)
    if problem is not None:
        raise InvalidRequestError(f"{kind} {value!r} {problem}")
    return value


def validate_repository(url: str) -> str:
    """Accept only local paths, ``file://``, ``https://``, ``ssh://`` and ``git@host:path``.

    Remote helpers (``ext::``, ``fd::``, any ``<name>::``) can run programs, and a leading
    ``-`` could be read as an option by git or ssh, so both are refused.
    """
    url = url.strip()
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidRepositoryError("repository must be a non-empty URL or path without spaces")
    if url.startswith("-"):
        raise InvalidRepositoryError("repository must not start with '-'")
    if "::" in url:
        raise InvalidRepositoryError(
            f"repository {url.split('::', 1)[0]!r}:: transports are not allowed; "
            "use a local path, file://, https://, ssh:// or git@host:path"
        )
    scheme = _SCHEME.match(url)
    if scheme:
        name = scheme.group(1).lower()
        if name not in _ALLOWED_SCHEMES:
            raise InvalidRepositoryError(
                f"repository scheme {name!r} is not allowed; use file://, https:// or ssh://"
            )
        host = _URL_HOST.match(url.lower())
        if name != "file" and (host is None or not host.group("host")):
            raise InvalidRepositoryError("repository URL has no host")
        if host is not None and host.group("host").startswith("-"):
            raise InvalidRepositoryError("repository host must not start with '-'")
        return url.rstrip("/")
    if url.startswith("/"):
        return str(Path(url)).rstrip("/") or "/"
    scp = _SCP_LIKE.match(url)
    if scp and "/" not in url.split(":", 1)[0]:
        return url
    raise InvalidRepositoryError(
        "repository must be an absolute local path, file://, https://, ssh:// or git@host:path"
    )


def validate_branch(name: str, runner: GitRunner) -> str:
    """A branch name git accepts (``git check-ref-format``) that cannot pass as an option."""
    if not name or name.startswith("-") or ".." in name:
        raise InvalidBranchError(f"branch {name!r} must not be empty, start with '-' or hold '..'")
    result = runner.run("check-ref-format", "--normalize", f"refs/heads/{name}", ok=(0, 1, 128))
    if result.status != 0 or result.stdout.strip() != f"refs/heads/{name}":
        raise InvalidBranchError(f"branch {name!r} is not a valid git branch name")
    return name
