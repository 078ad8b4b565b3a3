"""Whether a task could run on a repository, asked before it is queued.

``POST /agents/check`` asks gitops (the only service that reads repositories) whether
the repository can be reached, whether it has the task's branch, and whether the files
at that branch's tip that decide how the task runs (``.mosaic/gates.toml``, the
environment declaration) are valid: the same parsers the gates service and the spawner
use read the same bytes they will read, so a file that passes here parses there.

It writes nothing but the repository cache (a first check clones, like a first task
would; a failed clone leaves nothing), and reads only through ``shared.gitread``.
"""

from __future__ import annotations

import asyncio
import logging
import os

from services.gitops.errors import GitOpsError, InvalidRepositoryError
from services.gitops.repos import RepoCache
from services.gitops.validation import validate_branch, validate_repository
from shared.environments import RepositoryEnvironmentError, read_declaration
from shared.environments.prepare import locate_build_files
from shared.gatesfile import GATES_FILE, GatesFileError, parse_gates_file
from shared.gitread import CommitView, GitReadError
from shared.messages.checks import (
    CHECK_BRANCH,
    CHECK_ENVIRONMENT,
    CHECK_GATES,
    CHECK_REPOSITORY,
    NOT_CHECKED,
    Check,
    RepositoryChecked,
    RepositoryCheckRequested,
    RepositoryPathFound,
    RepositoryPathRequested,
)
from shared.repository import local_path

log = logging.getLogger(__name__)

_SKIPPED = NOT_CHECKED + ": the {0} check failed"


async def check_repository(
    cache: RepoCache, request: RepositoryCheckRequested, host: str
) -> RepositoryChecked:
    """The repository, branch, gates and environment checks of one task (see the module),
    naming this ``host`` (the repository path it gives is on its disk)."""
    checked = await _check(cache, request)
    return checked.model_copy(update={"host": host})


async def _check(cache: RepoCache, request: RepositoryCheckRequested) -> RepositoryChecked:
    url = validate_repository(request.repository)
    validate_branch(request.branch, cache.tool_runner())
    try:  # the clone or fetch takes the repository's remote lock itself
        await asyncio.to_thread(cache.ensure, url, request.branch)
    except GitOpsError as exc:
        failed = Check(name=CHECK_REPOSITORY, ok=False, detail=_unreachable(url, exc))
        return RepositoryChecked(checks=(failed, *_not_checked(CHECK_REPOSITORY)))
    # reads only (a ref, then objects that never change): outside the lock, so checks of
    # one repository do not queue behind each other or behind its agents' pushes
    return await asyncio.to_thread(_read, cache, url, request.branch)


async def path_exists(request: RepositoryPathRequested, host: str) -> RepositoryPathFound:
    """Whether a local repository path named by a task is a directory here (submit asks
    before queueing; the gateway itself reads no disk). Only absolute paths are looked at."""
    path = local_path(request.path)
    if path is None or not path.startswith("/"):
        raise InvalidRepositoryError(f"not a local repository path: {request.path!r}")
    exists = await asyncio.to_thread(os.path.isdir, path)
    return RepositoryPathFound(exists=exists, host=host)


def _read(cache: RepoCache, url: str, branch: str) -> RepositoryChecked:
    reached = Check(name=CHECK_REPOSITORY, ok=True, detail=f"reached {_where(url)}")
    ref = f"refs/remotes/origin/{branch}"
    commit = cache.commit_of(url, ref)
    if commit is None:
        missing = Check(
            name=CHECK_BRANCH,
            ok=False,
            detail=f"the repository has no branch {branch!r}: push it, or name an existing "
            "branch in context.branch",
        )
        return RepositoryChecked(checks=(reached, missing, *_not_checked(CHECK_BRANCH)))
    found = Check(name=CHECK_BRANCH, ok=True, detail=f"{branch} at {commit[:12]}")
    view = CommitView(cache.repo_path(url), commit)
    gates = _gates(view)
    environment, source = _environment(view)
    return RepositoryChecked(
        checks=(reached, found, gates, environment),
        commit=commit,
        environment_source=source,
        repo_path=str(cache.repo_path(url)),
    )


def _gates(view: CommitView) -> Check:
    try:
        raw = view.read(GATES_FILE)
        if raw is None:
            return Check(name=CHECK_GATES, ok=True, detail=f"no {GATES_FILE}: gates detected")
        parse_gates_file(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Check(name=CHECK_GATES, ok=False, detail=f"{GATES_FILE} is not UTF-8 text")
    except GatesFileError as exc:
        return Check(name=CHECK_GATES, ok=False, detail=exc.message)
    except GitReadError as exc:
        return Check(name=CHECK_GATES, ok=False, detail=f"could not read {GATES_FILE}: {exc}")
    return Check(name=CHECK_GATES, ok=True, detail=f"{GATES_FILE} is valid")


def _environment(view: CommitView) -> tuple[Check, str | None]:
    try:
        declaration = read_declaration(view)
        if declaration is None:
            detail = "no environment declared: the sandbox's own image or host tools"
            return Check(name=CHECK_ENVIRONMENT, ok=True, detail=detail), None
        if declaration.dockerfile is not None:
            locate_build_files(view, declaration)
    except RepositoryEnvironmentError as exc:
        return Check(name=CHECK_ENVIRONMENT, ok=False, detail=exc.message), None
    except GitReadError as exc:
        detail = f"could not read the environment declaration: {exc}"
        return Check(name=CHECK_ENVIRONMENT, ok=False, detail=detail), None
    base = (
        f"dockerfile {declaration.dockerfile}"
        if declaration.dockerfile is not None
        else f"image {declaration.image or '(the sandbox image)'}"
    )
    detail = f"{declaration.source} is valid ({base}, {len(declaration.setup)} setup commands)"
    return Check(name=CHECK_ENVIRONMENT, ok=True, detail=detail), declaration.source


def _unreachable(url: str, exc: GitOpsError) -> str:
    where = _where(url)
    fixes = {
        "repo_not_found": f"no repository at {where}: check context.repository",
        "auth_failed": f"{where} refused gitops's credentials: configure git credentials "
        "on the gitops host",
        "unreachable": f"cannot reach {where}: check the address and the network",
    }
    return fixes.get(exc.code, f"cannot read {where}: {exc.message}")


def _where(url: str) -> str:
    path = local_path(url)
    return path if path is not None else url


def _not_checked(after: str) -> tuple[Check, ...]:
    names = (CHECK_REPOSITORY, CHECK_BRANCH, CHECK_GATES, CHECK_ENVIRONMENT)
    rest = names[names.index(after) + 1 :]
    return tuple(Check(name=n, ok=False, detail=_SKIPPED.format(after)) for n in rest)
