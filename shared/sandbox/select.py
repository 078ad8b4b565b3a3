"""Choosing the sandbox: ``docker`` whenever a daemon answers, else ``local`` (loudly)."""

from __future__ import annotations

import asyncio
import logging

import docker
from docker.errors import DockerException

from shared.sandbox.base import SandboxError, SandboxFactory
from shared.sandbox.settings import SandboxSettings

logger = logging.getLogger(__name__)


def _docker_client(settings: SandboxSettings) -> docker.DockerClient:
    return docker.from_env(timeout=int(settings.docker_timeout_s))


async def sandbox_factory(
    settings: SandboxSettings | None = None, *, docker_client: docker.DockerClient | None = None
) -> SandboxFactory:
    """The factory for ``settings.kind``: ``docker``, ``local`` or ``auto`` (the default).

    ``auto`` takes ``docker`` when the daemon answers a ping and the sandbox image
    exists; otherwise ``local``, with a warning that it is not isolation. ``docker``
    never falls back: it raises ``SandboxError`` saying what is missing.
    """
    settings = settings or SandboxSettings()
    if settings.kind in ("docker", "auto"):
        from shared.sandbox.docker import DockerSandboxFactory

        try:
            client = docker_client or await asyncio.to_thread(_docker_client, settings)
            factory = DockerSandboxFactory(client, settings)
            await factory.check()
        except (DockerException, OSError, SandboxError) as exc:
            reason = exc.message if isinstance(exc, SandboxError) else str(exc)
            if settings.kind == "docker":
                raise SandboxError(f"MOSAIC_SANDBOX=docker but {reason}", retryable=True) from exc
            logger.warning(
                "no usable Docker (%s): falling back to the LOCAL sandbox, which is not "
                "isolation: agent commands run as this user on this host",
                reason,
            )
        else:
            logger.info("sandbox: docker, image %s", settings.image)
            return factory
    from shared.sandbox.host import HostSandboxFactory

    logger.warning("sandbox: local sandbox is not isolation (MOSAIC_SANDBOX=%s)", settings.kind)
    return HostSandboxFactory()
