"""Environment errors. Only a Docker daemon that does not answer is retryable.

A declaration that cannot be read, a build that fails or runs too long, and a sandbox
that cannot run an environment all give the same answer on the next attempt, so the
task ends ``failed`` with the reason instead of looping through retries.
"""

from __future__ import annotations

from shared.errors import MosaicError


class RepositoryEnvironmentError(MosaicError):
    """Base of every environment error (not retryable unless a subclass says so)."""

    code = "environment_error"
    retryable = False


class DeclarationError(RepositoryEnvironmentError):
    """The repository's environment file is invalid; the message names file and field."""

    code = "environment_invalid"


class NeedsDockerError(RepositoryEnvironmentError):
    """The repository declares an environment but this spawner's sandbox is not docker."""

    code = "environment_needs_docker"


class BuildFailedError(RepositoryEnvironmentError):
    """The build ran and failed (a setup step, the Dockerfile); carries its last lines."""

    code = "environment_build_failed"

    def __init__(self, message: str, last_lines: tuple[str, ...] = ()) -> None:
        tail = "\n".join(last_lines)
        super().__init__(f"{message}\n{tail}" if tail else message)
        self.last_lines = last_lines


class BuildTimeoutError(BuildFailedError):
    """The build took longer than ``MOSAIC_ENV_BUILD_TIMEOUT_S`` and was stopped."""

    code = "environment_build_timeout"


class DockerUnavailableError(RepositoryEnvironmentError):
    """The Docker daemon did not answer while preparing; another attempt may succeed."""

    code = "environment_docker_unavailable"
    retryable = True
