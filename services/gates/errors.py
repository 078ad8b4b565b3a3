"""The gates service's errors; ``retryable`` says whether asking again may help."""

from __future__ import annotations

from shared.errors import MosaicError


class GatesError(MosaicError):
    """Base of every error the gates service raises on purpose."""

    code = "gates_error"


class WorktreeError(GatesError):
    """The worktree named in the request is missing, not an agent repository gitops made, or
    not allowed."""

    code = "bad_worktree"


class GateConfigError(GatesError):
    """The repository's ``.mosaic/gates.toml`` is invalid; the message names the key."""

    code = "bad_gates_config"


class RunnerError(GatesError):
    """A gate command could not be run at all (not: it ran and failed)."""

    code = "runner_error"
    retryable = True


class ReviewerUnavailableError(GatesError):
    """The model behind the AI reviewer could not be reached or refused the request."""

    code = "reviewer_unavailable"
    retryable = True


class AuditUnavailableError(GatesError):
    """YOLO skips must be audited; the audit trail could not be written."""

    code = "audit_unavailable"
    retryable = True
