"""Input checks done before anything touches disk, so bad input leaves nothing behind."""

from __future__ import annotations

from services.gitops.errors import InvalidBranchError, InvalidRepositoryError, InvalidRequestError
from services.gitops.safety import GitRunner
from shared.ids import id_problem
from shared.memo import Memo
from shared.repository import canonical_repository


def validate_id(kind: str, value: str) -> str:
    """An agent or task id usable in a branch name and a directory name (``shared.ids``)."""
    problem = id_problem(value)
    if problem is not None:
        raise InvalidRequestError(f"{kind} {value!r} {problem}")
    return value


def validate_repository(url: str) -> str:
    """The repository rule of ``shared.repository`` (one rule for the HTTP edge and
    gitops), answered as gitops' ``invalid_repository`` error, in the cache's spelling."""
    try:
        return canonical_repository(url)
    except ValueError as exc:
        raise InvalidRepositoryError(f"repository {exc}") from None  # no echo: it may hold a token


_ACCEPTED_BRANCHES: Memo[str, str] = Memo(1024)
"""Names ``check-ref-format`` accepted (git's rule does not change while we run): most
requests name the same few base branches, and each asked a git process again."""


def validate_branch(name: str, runner: GitRunner) -> str:
    """A branch name git accepts (``git check-ref-format``) that cannot pass as an option."""
    if not name or name.startswith("-") or ".." in name:
        raise InvalidBranchError(f"branch {name!r} must not be empty, start with '-' or hold '..'")

    def check() -> str:
        ref = f"refs/heads/{name}"
        result = runner.run("check-ref-format", "--normalize", ref, ok=(0, 1, 128))
        if result.status != 0 or result.stdout.strip() != ref:
            raise InvalidBranchError(f"branch {name!r} is not a valid git branch name")
        return name

    return _ACCEPTED_BRANCHES.remembered(name, check)
