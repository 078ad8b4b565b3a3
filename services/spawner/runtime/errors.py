"""Errors of the agent runtime; the loop turns them into a failed outcome, never a traceback."""

from __future__ import annotations

from shared.errors import MosaicError


class AgentRuntimeError(MosaicError):
    """Base of every error the agent runtime raises on purpose."""

    code = "agent_runtime_error"


class ProviderError(AgentRuntimeError):
    """The model provider could not give a turn (bad key, retries exhausted, bad request)."""

    code = "provider_error"

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message, retryable=retryable)
        self.status = status


class PlanError(AgentRuntimeError):
    """A scripted plan that cannot be read or is malformed."""

    code = "bad_plan"
