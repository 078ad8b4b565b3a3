"""``mosaic.spawner.environment.check``: a docker spawner says whether a repository's
environment could be had on its host now (``POST /agents/check`` asks, after gitops
found and validated the declaration).

Only a docker spawner answers (queue group ``spawner-env``): only it knows which images
its Docker host holds. It reads gitops's cache repository at the commit gitops named,
through ``shared.gitread`` as the real preparation does, and pulls, builds or writes
nothing (``Environments.check``). The path must be a repository of the cache under
``$MOSAIC_HOME/repos``: a request cannot point it at any other directory.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from shared.environments import Environments, RepositoryEnvironmentError
from shared.gitread import GitReadError
from shared.messages.base import Failure
from shared.messages.checks import EnvironmentChecked, EnvironmentCheckRequested

log = logging.getLogger(__name__)


def _cache_repository(raw: str, root: Path) -> Path | None:
    """``raw`` when it is a repository directly inside the cache ``root``, else None."""
    path = Path(raw)
    if not path.is_absolute() or path.resolve().parent != root.resolve():
        return None  # elsewhere, or a symlink or ``..`` that leads out of the cache
    return path if (path / "HEAD").is_file() else None


async def check_environment(
    environments: Environments, instance: str, repos_root: Path, data: bytes
) -> EnvironmentChecked:
    """The answer to one request (malformed ones included: an ``error``, never a raise)."""
    try:
        request = EnvironmentCheckRequested.from_bytes(data)
    except ValidationError as exc:
        bad = Failure(code="invalid_request", message=f"bad EnvironmentCheckRequested: {exc}")
        return EnvironmentChecked(spawner=instance, error=bad)
    git_dir = _cache_repository(request.repo_path, repos_root)
    if git_dir is None:
        bad = Failure(
            code="invalid_request",
            message=f"repoPath is not a repository of the cache under {repos_root}",
        )
        return EnvironmentChecked(spawner=instance, error=bad)
    try:
        ok, detail = await environments.check(git_dir, request.commit)
    except (RepositoryEnvironmentError, GitReadError) as exc:
        return EnvironmentChecked(ok=False, detail=exc.message, spawner=instance)
    except Exception as exc:
        log.exception("environment check of %s failed unexpectedly", git_dir.name)
        crash = Failure(code="internal", message=f"internal error: {type(exc).__name__}")
        return EnvironmentChecked(spawner=instance, error=crash)
    return EnvironmentChecked(ok=ok, detail=detail, spawner=instance)
