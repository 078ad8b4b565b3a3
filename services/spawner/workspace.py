"""The first steps of an attempt: its worktree, its environment, its sandbox, in order.

Each step is tried once (``shared.backoff.ONCE``): a failure fails the attempt and the
queue's retry policy (``SpawnerSettings.retry_*``) starts the next one. Creating a worktree
or a sandbox is not safe to repeat inside one attempt: a request that timed out may have
done its work, and the second would meet it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.spawner.attempt import Attempt
from services.spawner.readiness import environment_of
from services.spawner.run_context import RunContext
from shared import agentrepo
from shared.backoff import ONCE, RetryPolicy
from shared.environments import PreparedEnvironment
from shared.messages.agents import AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.gitops import WorktreeReady
from shared.sandbox.base import Sandbox, SandboxSpec
from shared.sandbox.docker import DockerSandbox

OPEN_WORKTREE: RetryPolicy = ONCE
PREPARE_ENVIRONMENT: RetryPolicy = ONCE
OPEN_SANDBOX: RetryPolicy = ONCE


@dataclass(frozen=True)
class Worktree:
    """The attempt's worktree as gitops made it (its path is always set)."""

    ready: WorktreeReady
    path: str

    @property
    def base_commit(self) -> str | None:
        """The base commit the worktree started from."""
        return self.ready.base_commit


def _repository_path(ctx: RunContext, attempt: Attempt) -> Path | None:
    """Where gitops makes (or made) the attempt's repository, once it said for another."""
    root = ctx.worktree_roots.get(attempt.repository)
    return root / agentrepo.directory_name(attempt.agent_id, attempt.task_id) if root else None


async def place_warm_sandbox(ctx: RunContext, attempt: Attempt) -> None:
    """Put a warm container's slot where the agent's repository will be made, if the
    pool has one (``shared.sandbox.warmpool``); nothing before gitops said where this
    repository's agent repositories live."""
    path = _repository_path(ctx, attempt)
    if ctx.warm is not None and path is not None:
        await ctx.warm.place(path)


def release_warm_sandbox(ctx: RunContext, attempt: Attempt) -> None:
    """Whatever was placed for the attempt that its sandbox step did not take goes."""
    path = _repository_path(ctx, attempt)
    if ctx.warm is not None and path is not None:
        ctx.warm.release(path)


async def open_worktree(ctx: RunContext, attempt: Attempt) -> Worktree:
    """Ask gitops for the attempt's worktree (``StepFailedError`` when it refuses)."""
    ready = await OPEN_WORKTREE.run(
        lambda: ctx.gitops.create_worktree(attempt.worktree_requested()), what="worktree"
    )
    if ready.path is None:
        raise AssertionError("gitops answered a worktree without its path")
    ctx.worktree_roots[attempt.repository] = Path(ready.path).parent
    if ctx.warm is not None:
        ctx.warm.expect(Path(ready.path))
    return Worktree(ready, ready.path)


async def prepare_environment(
    ctx: RunContext, attempt: Attempt, worktree: Worktree
) -> PreparedEnvironment:
    """The repository's environment at the worktree's base commit, built if needed.

    A declaration error, a failed build or a sandbox that cannot run images ends the
    task ``failed`` (not retried); the build's progress goes out as agent events.
    """
    environments = ctx.environments
    if environments is None:
        raise AssertionError("RunContext always has its environments")
    repo = worktree.ready.repo_path

    async def progress(detail: dict[str, Any]) -> None:
        await attempt.tracker.record("progress", {"step": "environment", **detail})

    return await PREPARE_ENVIRONMENT.run(
        lambda: environments.prepare(
            Path(repo) if repo else None, worktree.base_commit, progress=progress
        ),
        what="environment",
    )


def sandbox_spec(
    ctx: RunContext, attempt: Attempt, worktree: Worktree, environment: PreparedEnvironment
) -> SandboxSpec:
    """The agent's sandbox: its worktree, its network, its environment's image."""
    shared_objects = worktree.ready.shared_objects
    return SandboxSpec(
        agent_id=attempt.agent_id,
        task_id=attempt.task_id,
        worktree=Path(worktree.path),
        network=attempt.request.options.network,
        owner=ctx.instance,
        deployment=ctx.deployment,
        image=environment.image,
        env=environment.env_pairs(),
        # the cache objects the agent's repository borrows, mounted read-only
        readonly=(Path(shared_objects),) if shared_objects else (),
    )


async def open_sandbox(ctx: RunContext, spec: SandboxSpec) -> Sandbox:
    """Create the agent's sandbox (the warm one placed for it, when one was)."""
    return await OPEN_SANDBOX.run(lambda: ctx.sandboxes.create(spec), what="sandbox")


async def record_warm_start(
    ctx: RunContext, attempt: Attempt, sandbox: Sandbox, seconds: float
) -> None:
    """With a warm pool, which spawns it served and what the sandbox step took (a
    ``progress`` event: ``step: sandbox``, ``warm``, ``ms``)."""
    if ctx.warm is not None:
        warm = isinstance(sandbox, DockerSandbox) and sandbox.warm
        detail = {"step": "sandbox", "warm": warm, "ms": round(seconds * 1000, 1)}
        await attempt.tracker.record("progress", detail)


async def mark_running(
    ctx: RunContext,
    attempt: Attempt,
    worktree: Worktree,
    sandbox: Sandbox,
    spec: SandboxSpec,
    environment: PreparedEnvironment,
) -> None:
    """The record says ``running``/``executing`` and what runs: provider, model, sandbox
    and environment (the most precise one known)."""
    model = ctx.model
    built = None
    if environment.image is not None:
        built = f"image {environment.image} (from {environment.source})"
    await attempt.tracker.transition(
        agent=AgentState.RUNNING,
        task=TaskState.EXECUTING,
        fields={
            "started_at": utcnow(),
            "worktree": worktree.path,
            "agent_branch": worktree.ready.branch,
            "sandbox": sandbox.kind,
            "unsafe": ctx.sandboxes.unsafe,
            "environment": built or environment_of(sandbox.kind, spec.image or ctx.default_image),
            "provider": model.provider(),
            "model": model.model_name(),
        },
    )
