"""gitops' view of the shared git runner (``shared.git``): its errors, its environment.

Every rule that keeps agent-written config from running a program on the host is in
``shared.git`` (written once for every service); this module only gives gitops the
operator's environment (its remotes need the operator's credentials) and turns the
runner's errors into gitops' own, which the handlers reply with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from services.gitops.errors import GitCommandError, GitOpsError, WorktreeTamperedError
from shared import agentrepo
from shared.agentrepo import AgentRepo
from shared.git import (
    Git,
    GitError,
    GitResult,
    GitTamperedError,
    GitTimeoutError,
    nested_repositories,
    operator_env,
    redact,
)
from shared.git import refuse_nested_repositories as _refuse_nested

__all__ = [
    "GitResult",
    "GitRunner",
    "nested_repositories",
    "redact",
    "refuse_nested_repositories",
    "runner_factory",
    "verify_agent_repo",
]


class GitRunner(Git):
    """``shared.git.Git`` with the operator's environment, raising gitops' errors."""

    def __init__(
        self,
        git_dir: Path | None,
        work_tree: Path | None = None,
        *,
        cwd: Path | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            git_dir, work_tree, cwd=cwd, timeout=timeout, env=operator_env(), extra_env=env
        )

    def run(
        self,
        *args: str,
        ok: Sequence[int] = (0,),
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> GitResult:
        try:
            return super().run(*args, ok=ok, env=env, timeout=timeout, stdin=stdin)
        except GitTimeoutError as exc:  # shared.git's, in gitops' base for the reply
            raise GitOpsError(exc.message, code=exc.code, retryable=exc.retryable) from exc
        except GitTamperedError as exc:
            raise WorktreeTamperedError(exc.message) from exc
        except GitError as exc:
            raise GitCommandError(exc.message, retryable=exc.retryable) from exc


def runner_factory(timeout: float) -> Callable[[Path | None, Path | None, Mapping[str, str]], Git]:
    """A ``shared.agentrepo.GitFactory`` that makes gitops' runners."""

    def make(git_dir: Path | None, work_tree: Path | None, env: Mapping[str, str]) -> Git:
        return GitRunner(git_dir, work_tree, timeout=timeout, env=env)

    return make


def refuse_nested_repositories(runner: Git, tree: str | None = None) -> None:
    """``shared.git.refuse_nested_repositories``, raising ``WorktreeTamperedError``."""
    try:
        _refuse_nested(runner, tree)
    except GitTamperedError as exc:
        raise WorktreeTamperedError(exc.message) from exc


def verify_agent_repo(repo: AgentRepo) -> None:
    """``shared.agentrepo.verify``, raising ``WorktreeTamperedError``."""
    try:
        agentrepo.verify(repo)
    except GitTamperedError as exc:
        raise WorktreeTamperedError(exc.message) from exc
