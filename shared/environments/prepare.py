"""From a task's base commit to the image its sandbox and gates run in.

``Environments.prepare`` reads the declaration at the base commit (never the worktree),
computes the key, and returns the image at once when it exists; otherwise one caller
(across every spawner, through a Valkey lock) builds it while the others wait for it.
A failed build is remembered for ``failure_ttl_s`` under its key, so twenty agents of a
broken repository fail with the same output instead of building twenty times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.environments.build import (
    BuildCancel,
    BuildRequest,
    build_image,
    image_attrs,
    read_ca_bundle,
)
from shared.environments.declaration import (
    DEVCONTAINER_FILE,
    MOSAIC_FILE,
    Declaration,
    parse_mosaic,
)
from shared.environments.devcontainer import parse_devcontainer
from shared.environments.errors import (
    BuildFailedError,
    BuildTimeoutError,
    DeclarationError,
    DockerUnavailableError,
    NeedsDockerError,
)
from shared.environments.key import (
    LABEL_CREATED,
    LABEL_KEY,
    LABEL_REPOSITORY,
    LABEL_SOURCE,
    cache_key,
    image_tag,
    matching,
    repository_slug,
)
from shared.environments.lock import BuildLock
from shared.environments.prune import prune_images
from shared.environments.settings import EnvironmentSettings
from shared.errors import BusUnavailableError
from shared.gitread import CommitView, TreeEntry
from shared.memo import Memo
from shared.sandbox.base import SandboxFactory
from shared.sandbox.docker import DockerSandboxFactory
from shared.sandbox.settings import SandboxSettings
from shared.store import StateStore

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], Awaitable[None]]
"""Receives the preparation's events: ``{"phase": ..., ...}`` (see ``docs/environments.md``)."""

_FLUSH_S = 1.0
_FLUSH_LINES = 50


@dataclass(frozen=True)
class PreparedEnvironment:
    """What a sandbox (and the gates) run with: the image (None: the backend's default)
    and the declared non-secret environment."""

    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    key: str | None = None
    built: bool = False
    """Whether this call built the image (False: it existed, or another caller built it)."""

    def env_pairs(self) -> tuple[tuple[str, str], ...]:
        """``env`` in the form ``SandboxSpec.env`` takes."""
        return tuple(sorted(self.env.items()))


NO_ENVIRONMENT = PreparedEnvironment()


_DECLARATIONS: Memo[tuple[str, str], Declaration | None] = Memo(1024)
"""Declarations read, by repository and commit: what a commit holds never changes, and
every agent of a repository read its base commit's again (two git processes when it
declares nothing, most of the time)."""


def read_declaration(view: CommitView) -> Declaration | None:
    """The repository's declaration at the view's commit, first source found, or None
    (one that does not parse raises, and is read again next time)."""
    key = (str(view.git_dir), view.commit)
    return _DECLARATIONS.remembered(key, lambda: _read_declaration(view))


def _read_declaration(view: CommitView) -> Declaration | None:
    raw = view.read(MOSAIC_FILE)
    if raw is not None:
        return parse_mosaic(raw)
    raw = view.read(DEVCONTAINER_FILE)
    if raw is not None:
        return parse_devcontainer(raw)
    return None


def locate_build_files(
    view: CommitView, decl: Declaration, files: list[TreeEntry] | None = None
) -> tuple[str, str]:
    """The blob of the declared Dockerfile and the tree of its build context at the view's
    commit; ``DeclarationError`` names the one the repository lacks."""
    assert decl.dockerfile is not None
    listed = view.files() if files is None else files
    dockerfile_oid = next((f.oid for f in listed if f.path == decl.dockerfile), None)
    if dockerfile_oid is None:
        raise DeclarationError(
            f"{decl.source}: dockerfile: {decl.dockerfile} is not in the repository"
        )
    context_tree = view.tree_id(decl.context)
    if context_tree is None:
        raise DeclarationError(f"{decl.source}: context: {decl.context} is not in the repository")
    return dockerfile_oid, context_tree


class BaseImageMissingError(BuildFailedError):
    """The base image is not on this Docker host (raised only when told not to pull)."""

    code = "environment_base_missing"

    def __init__(self, image: str) -> None:
        super().__init__(f"base image {image} is not on this Docker host")
        self.image = image


@dataclass(frozen=True)
class _Plan:
    key: str
    tag: str
    slug: str
    base_image: str | None
    base_user: str


class Environments:
    """Prepares environments for one spawner; safe to share between its agents."""

    @classmethod
    def for_sandboxes(
        cls, factory: SandboxFactory, store: StateStore, settings: EnvironmentSettings | None = None
    ) -> Environments:
        """The environments a spawner with ``factory`` and ``store`` can give its agents:
        images need the docker backend (its client and default image); any other backend
        can only run repositories that declare nothing."""
        if isinstance(factory, DockerSandboxFactory):
            client: docker.DockerClient | None = factory.client
            image = factory.settings.image
        else:
            client, image = None, SandboxSettings().image
        return cls(
            redis=store.redis,
            prefix=store.key(),
            docker_client=client,
            sandbox_kind=factory.kind,
            default_image=image,
            settings=settings,
        )

    def __init__(
        self,
        *,
        redis: Redis,
        prefix: str,
        docker_client: docker.DockerClient | None,
        sandbox_kind: str,
        default_image: str,
        settings: EnvironmentSettings | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._client = docker_client
        self.sandbox_kind = sandbox_kind
        self.default_image = default_image
        self.settings = settings or EnvironmentSettings()

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, "env", *parts))

    async def prepare(
        self, git_dir: Path | None, base_commit: str | None, *, progress: Progress | None = None
    ) -> PreparedEnvironment:
        """The environment of the repository at ``git_dir`` as of ``base_commit``."""
        if git_dir is None or base_commit is None:
            return NO_ENVIRONMENT  # an empty repository declares nothing
        view = CommitView(git_dir, base_commit)
        declaration = await asyncio.to_thread(read_declaration, view)
        if declaration is None:
            return NO_ENVIRONMENT
        if self.sandbox_kind != "docker" or self._client is None:
            raise NeedsDockerError(
                f"this repository declares its environment in {declaration.source}, which "
                f"is built into a container image and needs the docker sandbox; this spawner "
                f"runs MOSAIC_SANDBOX={self.sandbox_kind}. Run it with a Docker daemon "
                f"(MOSAIC_SANDBOX=docker or auto), or remove {declaration.source}"
            )
        emit = progress or _ignore
        plan = await asyncio.to_thread(self._plan, view, declaration, git_dir.name)
        ready = PreparedEnvironment(
            image=plan.tag, env=dict(declaration.env), source=declaration.source, key=plan.key
        )
        if await self._exists(plan.tag):
            await self._used(plan.tag)
            await emit({"phase": "cached", "image": plan.tag, "source": declaration.source})
            return ready
        try:
            built = await self._build_once(view, declaration, plan, emit)
        except RedisError as exc:  # the lock and the failure memory live there
            raise BusUnavailableError(f"environment build lock: Valkey failed: {exc}") from exc
        return PreparedEnvironment(
            image=ready.image, env=ready.env, source=ready.source, key=ready.key, built=built
        )

    def _plan(
        self, view: CommitView, decl: Declaration, repository: str, *, pull: bool = True
    ) -> _Plan:
        files = view.files()
        inputs = matching(files, decl.inputs)
        dockerfile_oid = context_tree = None
        base_image: str | None = None
        base_id: str | None = None
        base_user = ""
        if decl.dockerfile is not None:
            dockerfile_oid, context_tree = locate_build_files(view, decl, files)
        else:
            base_image = decl.image or self.default_image
            base_id, base_user = self._base(base_image, decl.source, pull=pull)
        slug = repository_slug(repository)
        key = cache_key(
            decl,
            inputs,
            base_image_id=base_id,
            dockerfile_oid=dockerfile_oid,
            context_tree=context_tree,
        )
        return _Plan(key, image_tag(slug, key), slug, base_image, base_user)

    def _base(self, image: str, source: str, *, pull: bool = True) -> tuple[str, str]:
        """The base image's id and user; pulled once when it is not here (``pull``;
        otherwise ``BaseImageMissingError``)."""
        assert self._client is not None
        api = self._client.api
        try:
            try:
                attrs = image_attrs(api, image)
            except ImageNotFound:
                if not pull:
                    raise BaseImageMissingError(image) from None
                log.info("pulling environment base %s", image)
                try:
                    self._client.images.pull(image)
                except DockerException as exc:
                    raise BuildFailedError(
                        f"{source}: image: {image} is not on this Docker host and could not "
                        f"be pulled: {exc}"
                    ) from exc
                attrs = image_attrs(api, image)
        except BuildFailedError:
            raise
        except DockerException as exc:
            raise DockerUnavailableError(f"Docker did not answer: {exc}") from exc
        return str(attrs["Id"]), str((attrs.get("Config") or {}).get("User") or "")

    async def check(self, git_dir: Path, commit: str) -> tuple[bool, str]:
        """Whether this spawner could give a task at ``commit`` its environment now, and
        what it found: cached, or buildable (the base is here or its registry has it, and
        no build of the same key failed moments ago). Pulls, builds and writes nothing."""
        view = CommitView(git_dir, commit)
        declaration = await asyncio.to_thread(read_declaration, view)
        if declaration is None:
            return True, f"no environment declared: docker runs {self.default_image}"
        if self.sandbox_kind != "docker" or self._client is None:
            return False, f"{declaration.source} needs the docker sandbox, not {self.sandbox_kind}"
        try:
            plan = await asyncio.to_thread(self._plan, view, declaration, git_dir.name, pull=False)
        except BaseImageMissingError as missing:
            return await asyncio.to_thread(self._in_registry, missing.image, declaration.source)
        if await self._exists(plan.tag):
            return True, f"cached: {plan.tag}"
        failed = await self._failure(plan.key)
        if failed is not None:
            return False, failed.message
        base = plan.base_image or f"{declaration.dockerfile} (a Dockerfile)"
        return True, f"buildable: {plan.tag} is built from {base} before the first task"

    def _in_registry(self, image: str, source: str) -> tuple[bool, str]:
        """A base image not on this host: does its registry have it (asked, not pulled)?"""
        assert self._client is not None
        ask: Callable[[str], object] = self._client.api.inspect_distribution
        try:
            ask(image)
        except DockerException as exc:
            return False, (
                f"{source}: image {image} is not on this Docker host and its registry did not "
                f"confirm it ({exc}): build or load it here, or name another image"
            )
        return True, f"buildable: base {image} is in its registry, pulled before the first task"

    async def _exists(self, tag: str) -> bool:
        assert self._client is not None
        client = self._client
        try:
            await asyncio.to_thread(image_attrs, client.api, tag)
        except ImageNotFound:
            return False
        except DockerException as exc:
            raise DockerUnavailableError(f"Docker did not answer: {exc}") from exc
        return True

    async def _used(self, tag: str) -> None:
        with contextlib.suppress(Exception):  # only pruning reads it
            await self._redis.hset(self._key("used"), tag, str(time.time()))

    async def _failure(self, key: str) -> BuildFailedError | None:
        raw = await self._redis.get(self._key("failed", key))
        if raw is None:
            return None
        return BuildFailedError(
            "environment build failed (the same key failed moments ago; change the "
            "declaration or wait MOSAIC_ENV_FAILURE_TTL_S to retry):\n" + _text(raw)
        )

    async def _build_once(
        self, view: CommitView, decl: Declaration, plan: _Plan, emit: Progress
    ) -> bool:
        """Build ``plan`` unless someone else does; True when this call built it."""
        lock = BuildLock(self._redis, self._key("lock", plan.key), self.settings.lock_ttl_s)
        deadline = time.monotonic() + self.settings.build_timeout_s + 2 * self.settings.lock_ttl_s
        told_waiting = False
        while True:
            failed = await self._failure(plan.key)
            if failed is not None:
                raise failed
            if await lock.acquire():
                async with lock.holding():
                    if await self._exists(plan.tag):
                        await self._used(plan.tag)
                        return False
                    await self._build(view, decl, plan, emit)
                await self._used(plan.tag)
                await self._prune()
                return True
            if not told_waiting:
                told_waiting = True
                await emit({"phase": "waiting", "image": plan.tag, "source": decl.source})
            while await lock.held_elsewhere():
                if time.monotonic() > deadline:
                    raise BuildTimeoutError(
                        f"waited longer than {self.settings.build_timeout_s:.0f}s "
                        f"(MOSAIC_ENV_BUILD_TIMEOUT_S) for another build of {plan.tag}"
                    )
                await asyncio.sleep(self.settings.wait_poll_s)
            if await self._exists(plan.tag):
                await self._used(plan.tag)
                await emit({"phase": "ready", "image": plan.tag, "source": decl.source})
                return False

    async def _build(
        self, view: CommitView, decl: Declaration, plan: _Plan, emit: Progress
    ) -> None:
        assert self._client is not None
        await emit({"phase": "building", "image": plan.tag, "source": decl.source})
        request = BuildRequest(
            declaration=decl,
            view=view,
            tag=plan.tag,
            labels={
                LABEL_KEY: plan.key,
                LABEL_SOURCE: decl.source,
                LABEL_REPOSITORY: plan.slug,
                LABEL_CREATED: datetime.now(UTC).isoformat(),
            },
            base_image=plan.base_image,
            base_user=plan.base_user,
            ca_bundle=read_ca_bundle(self.settings.ca_bundle),
        )
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def sink(line: str) -> None:
            loop.call_soon_threadsafe(lines.put_nowait, line)

        forward = asyncio.create_task(_forward(lines, emit, plan.tag))
        started = time.monotonic()
        cancel = BuildCancel()
        building = asyncio.ensure_future(
            asyncio.to_thread(
                build_image,
                self._client,
                request,
                timeout_s=self.settings.build_timeout_s,
                keep_lines=self.settings.output_lines,
                sink=sink,
                cancel=cancel,
            )
        )
        try:
            await asyncio.shield(building)
        except asyncio.CancelledError:
            # the agent was killed or its spawner stops: stop the build, keep holding the
            # lock until it has stopped (so no second build of the key overlaps it)
            cancel.fire()
            with contextlib.suppress(Exception):
                await building
            raise
        except BuildFailedError as exc:
            await self._redis.set(
                self._key("failed", plan.key),
                exc.message[-8000:],
                px=max(int(self.settings.failure_ttl_s * 1000), 1),
            )
            raise
        finally:
            lines.put_nowait(None)
            await forward
        await emit(
            {
                "phase": "built",
                "image": plan.tag,
                "source": decl.source,
                "seconds": round(time.monotonic() - started, 1),
            }
        )

    async def _prune(self) -> None:
        """Apply the pruning policy after a build; a failure only logs."""
        try:
            await self.prune()
        except Exception:
            log.warning("environment pruning failed", exc_info=True)

    async def prune(self) -> list[str]:
        """Remove environment images the policy no longer keeps (see ``prune.py``)."""
        if self._client is None:
            return []
        raw = await self._redis.hgetall(self._key("used"))
        used = {_text(k): float(v) for k, v in raw.items()}
        removed = await asyncio.to_thread(
            prune_images, self._client, used, self.settings, time.time()
        )
        if removed:
            await self._redis.hdel(self._key("used"), *removed)
        return removed


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def _ignore(_: dict[str, Any]) -> None:
    return None


async def _forward(lines: asyncio.Queue[str | None], emit: Progress, tag: str) -> None:
    """Batch build lines into events: a line waits a second at most, 50 go at once."""
    batch: list[str] = []
    flush_at: float | None = None
    while True:
        wait = None if flush_at is None else max(flush_at - time.monotonic(), 0.0)
        try:
            line = await asyncio.wait_for(lines.get(), wait)
        except TimeoutError:
            line = ""  # the oldest waiting line is a second old
        if line:
            batch.append(line)
            flush_at = flush_at or time.monotonic() + _FLUSH_S
        if batch and (not line or len(batch) >= _FLUSH_LINES):
            with contextlib.suppress(Exception):  # progress never fails the build
                await emit({"phase": "output", "image": tag, "lines": batch})
            batch, flush_at = [], None
        if line is None:
            return
