"""Per-repository environments: the image an agent's sandbox and its gates run in.

A repository declares it (``.mosaic/environment.toml`` or ``.devcontainer/
devcontainer.json``, read at the task's base commit); ``Environments.prepare`` builds it
once per cache key into a local ``mosaic-env/...`` image. See docs/environments.md.

It lives in ``shared/`` beside the sandbox layer, not in the spawner: it is the one
other place that talks to Docker, the gates consume its result (an image tag in their
request), and pruning is a maintenance job any process of the system may run.
"""

from shared.environments.declaration import Declaration
from shared.environments.errors import (
    BuildFailedError,
    BuildTimeoutError,
    DeclarationError,
    DockerUnavailableError,
    NeedsDockerError,
    RepositoryEnvironmentError,
)
from shared.environments.prepare import (
    NO_ENVIRONMENT,
    Environments,
    PreparedEnvironment,
    read_declaration,
)
from shared.environments.settings import EnvironmentSettings

__all__ = [
    "NO_ENVIRONMENT",
    "BuildFailedError",
    "BuildTimeoutError",
    "Declaration",
    "DeclarationError",
    "DockerUnavailableError",
    "EnvironmentSettings",
    "Environments",
    "NeedsDockerError",
    "PreparedEnvironment",
    "RepositoryEnvironmentError",
    "read_declaration",
]
