"""Typed errors of the gitops service; handlers turn them into ``Failure`` replies."""

from __future__ import annotations

from shared.errors import MosaicError


class GitOpsError(MosaicError):
    """Base of every error gitops raises on purpose; ``paths`` names files it concerns."""

    code = "git_failed"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool | None = None,
        paths: tuple[str, ...] = (),
    ):
        super().__init__(message, code=code, retryable=retryable)
        self.paths = paths


class InvalidRequestError(GitOpsError):
    """An agent or task id that cannot name a branch or a directory."""

    code = "invalid_request"


class InvalidRepositoryError(GitOpsError):
    """A repository URL with a transport we do not allow, or malformed."""

    code = "invalid_repository"


class InvalidBranchError(GitOpsError):
    """A branch name git would refuse, or that could be read as an option."""

    code = "invalid_branch"


class RepoNotFoundError(GitOpsError):
    """The remote answered, but there is no repository at that address."""

    code = "repo_not_found"


class UnreachableError(GitOpsError):
    """The remote host could not be reached; it may be back later."""

    code = "unreachable"
    retryable = True


class AuthFailedError(GitOpsError):
    """The remote refused our credentials (or asked for some we do not have)."""

    code = "auth_failed"


class BranchNotFoundError(GitOpsError):
    """The base branch does not exist on the remote."""

    code = "branch_not_found"


class WorktreeClashError(GitOpsError):
    """The worktree path is taken by something that is not this agent's worktree."""

    code = "worktree_clash"


class BranchInUseError(GitOpsError):
    """The agent branch is checked out in another worktree."""

    code = "branch_in_use"


class WorktreeNotFoundError(GitOpsError):
    """No worktree for this agent and task (never created, or already removed)."""

    code = "worktree_not_found"


class WorktreeTamperedError(GitOpsError):
    """The worktree's ``.git`` no longer points at our repository: we refuse to run git."""

    code = "worktree_tampered"


class SecretFoundError(GitOpsError):
    """The secret scan found something; ``findings`` say where, never what."""

    code = "secret_found"

    def __init__(self, message: str, findings: tuple[tuple[str, int, str], ...]):
        super().__init__(message, paths=tuple(dict.fromkeys(path for path, _, _ in findings)))
        self.findings = findings


class ConflictError(GitOpsError):
    """The agent branch does not merge cleanly into the current remote base.

    ``base_commit`` is the base it was checked against (the freshly fetched
    ``origin/<base>``): the spawner points the agent's ``origin/<base>`` at it, so the
    agent can rebase or merge without a network.
    """

    code = "conflict"

    def __init__(self, message: str, *, paths: tuple[str, ...], base_commit: str) -> None:
        super().__init__(message, paths=paths)
        self.base_commit = base_commit


class PushRejectedError(GitOpsError):
    """The remote kept rejecting the push (not a fast-forward, or a hook refused)."""

    code = "push_rejected"
    retryable = True


class GitCommandError(GitOpsError):
    """A git command failed in a way we did not classify."""

    code = "git_failed"
