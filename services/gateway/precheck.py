"""``POST /agents/check``: whether a task could run now, without queueing it.

Every check reads; none writes: the store (task id, hold) and the spawners' heartbeat
records from Valkey, and the repository through gitops over NATS (the gateway neither
reads the workspace nor runs git). The answer lists every check, passed or not, so a
coordinator sees all that is wrong at once; a failed check's detail says what to fix.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.gateway.deps import Resources
from shared import subjects
from shared.bus import request
from shared.errors import BusUnavailableError
from shared.messages.checks import (
    CHECK_BRANCH,
    CHECK_ENVIRONMENT,
    CHECK_GATES,
    CHECK_IMAGE,
    CHECK_INTAKE,
    CHECK_PROVIDER,
    CHECK_REPOSITORY,
    CHECK_REQUEST,
    CHECK_SPAWNER,
    CHECK_TASK,
    NOT_CHECKED,
    Check,
    EnvironmentChecked,
    EnvironmentCheckRequested,
    PreCheck,
    RepositoryChecked,
    RepositoryCheckRequested,
)
from shared.messages.spawners import SpawnerCapability
from shared.messages.tasks import SpawnAgentRequest
from shared.spawners import why_not_ready

_REPOSITORY_CHECKS = (CHECK_REPOSITORY, CHECK_BRANCH, CHECK_GATES, CHECK_ENVIRONMENT)


async def precheck(body: SpawnAgentRequest, deps: Resources) -> PreCheck:
    """Every check of ``body`` (already valid: the route refused a malformed one)."""
    try:
        known, held, live = await asyncio.gather(
            deps.store.agent_for_task(body.task_id), deps.store.held(), deps.spawners.live()
        )
    except OSError as exc:  # redis ConnectionError derives from it
        raise BusUnavailableError(f"state store unavailable: {exc}") from exc
    repository = await _ask_gitops(body, deps)
    ready = [s for s in live if s.ready]
    checks = [
        Check(name=CHECK_REQUEST, ok=True, detail="valid"),
        await _task(body, known, deps),
        _intake(held),
        _spawner(live, ready),
        _provider(live, ready),
        *repository.checks,
        await _image(repository, ready, deps),
    ]
    return PreCheck.of(checks)


async def _task(body: SpawnAgentRequest, known: str | None, deps: Resources) -> Check:
    if known is None:
        return Check(name=CHECK_TASK, ok=True, detail=f"task id {body.task_id} is new")
    record = await deps.store.get_agent(known)
    state = f", {record.state.value}" if record is not None else ""
    return Check(
        name=CHECK_TASK,
        ok=False,
        detail=f"task id {body.task_id} is already known (agent {known}{state}): it would "
        "not be queued again; give the task a new taskId",
    )


_HOLD_KINDS = {"killall": "kill-all", "budget": "spent daily budget"}
"""How each kind of hold the store reports (``StateStore.held``) reads in a sentence."""


def _intake(held: dict[str, Any] | None) -> Check:
    if held is None:
        return Check(name=CHECK_INTAKE, ok=True, detail="intake open")
    kind = _HOLD_KINDS.get(str(held.get("kind")), "kill-all")
    said = [
        str(held[key])
        for key in ("reason", "requestedBy", "at")
        if isinstance(held.get(key), str) and held[key]
    ]
    why = f" ({', '.join(said)})" if said else ""
    return Check(
        name=CHECK_INTAKE,
        ok=False,
        detail=f"intake is held by a {kind}{why}: no task starts until an admin lifts it "
        "(POST /agents/resume)",
    )


def _spawner(live: list[SpawnerCapability], ready: list[SpawnerCapability]) -> Check:
    if not live:
        return Check(
            name=CHECK_SPAWNER,
            ok=False,
            detail="no spawner is running (no heartbeat): start one (`mosaic up`, or the "
            "spawner service); a task queued now would wait for it",
        )
    if not ready:
        return Check(name=CHECK_SPAWNER, ok=False, detail=str(why_not_ready(live)))
    shown = ", ".join(
        f"{s.instance} ({s.sandbox}{' UNSAFE' if s.unsafe else ''}, {s.slots} slots)" for s in ready
    )
    return Check(name=CHECK_SPAWNER, ok=True, detail=f"{len(ready)} ready: {shown}")


def _has_model(spawner: SpawnerCapability) -> bool:
    return spawner.provider is not None and not any(
        p.startswith("no model") for p in spawner.problems
    )


def _provider(live: list[SpawnerCapability], ready: list[SpawnerCapability]) -> Check:
    with_model = [s for s in (ready or live) if _has_model(s)]
    if with_model:
        names = sorted({f"{s.provider} (model {s.model})" for s in with_model})
        return Check(name=CHECK_PROVIDER, ok=True, detail=", ".join(names))
    if not live:
        return Check(name=CHECK_PROVIDER, ok=False, detail=f"{NOT_CHECKED}: no spawner is running")
    problems = sorted({p for s in live for p in s.problems if p.startswith("no model")})
    detail = "; ".join(problems) or "no spawner has a model provider configured"
    return Check(name=CHECK_PROVIDER, ok=False, detail=detail + " (then restart the spawner)")


async def _ask_gitops(body: SpawnAgentRequest, deps: Resources) -> RepositoryChecked:
    """gitops's checks of the repository, or each of them failed with why none was made."""
    asked = RepositoryCheckRequested(repository=body.context.repository, branch=body.context.branch)
    timeout = deps.settings.gateway_precheck_timeout_s
    try:
        if not deps.broker.connection.is_connected:
            raise BusUnavailableError("NATS disconnected")
        answer = await request(
            deps.broker, subjects.GITOPS_CHECK, asked, RepositoryChecked, timeout
        )
    except BusUnavailableError as exc:
        why = (
            f"{NOT_CHECKED}: gitops did not answer ({exc.message}); is the gitops service "
            f"running? (a first clone of a large repository may take longer than "
            f"GATEWAY_PRECHECK_TIMEOUT_S={timeout:g})"
        )
        return RepositoryChecked(
            checks=tuple(Check(name=n, ok=False, detail=why) for n in _REPOSITORY_CHECKS)
        )
    if answer.error is not None:
        failed = Check(
            name=CHECK_REPOSITORY, ok=False, detail=f"{answer.error.code}: {answer.error.message}"
        )
        rest = tuple(
            Check(name=n, ok=False, detail=f"{NOT_CHECKED}: the repository check failed")
            for n in _REPOSITORY_CHECKS[1:]
        )
        return RepositoryChecked(checks=(failed, *rest))
    return answer


async def _image(
    repository: RepositoryChecked, ready: list[SpawnerCapability], deps: Resources
) -> Check:
    """Whether the task's environment can be had on the spawners that would run it."""
    environment = next((c for c in repository.checks if c.name == CHECK_ENVIRONMENT), None)
    if environment is None or not environment.ok:
        why = f"{NOT_CHECKED}: the environment check failed"
        return Check(name=CHECK_IMAGE, ok=False, detail=why)
    if not ready:
        return Check(name=CHECK_IMAGE, ok=False, detail=f"{NOT_CHECKED}: no spawner is ready")
    kinds = sorted({str(s.sandbox) for s in ready})
    docker = [s for s in ready if s.sandbox == "docker"]
    source = repository.environment_source
    if source is None:
        if not docker:
            return Check(name=CHECK_IMAGE, ok=True, detail=f"{'/'.join(kinds)}: no image needed")
        images = sorted({str(s.environment) for s in docker})
        return Check(name=CHECK_IMAGE, ok=True, detail=f"docker runs {', '.join(images)}")
    if not docker:
        return Check(
            name=CHECK_IMAGE,
            ok=False,
            detail=f"the repository declares its environment in {source}, which is built "
            f"into a container image and needs the docker sandbox; the ready spawners run "
            f"{'/'.join(kinds)}: run a spawner with Docker (MOSAIC_SANDBOX=docker or auto), "
            f"or remove {source}",
        )
    return await _ask_docker_spawner(repository, deps)


async def _ask_docker_spawner(repository: RepositoryChecked, deps: Resources) -> Check:
    """A docker spawner's word on the declared environment: cached, buildable, or not."""
    if repository.repo_path is None or repository.commit is None or repository.host is None:
        why = f"{NOT_CHECKED}: gitops named no commit or host"
        return Check(name=CHECK_IMAGE, ok=False, detail=why)
    subject = subjects.spawner_environment_check(repository.host)  # where repo_path is
    asked = EnvironmentCheckRequested(repo_path=repository.repo_path, commit=repository.commit)
    timeout = deps.settings.gateway_precheck_timeout_s
    try:
        answer = await request(deps.broker, subject, asked, EnvironmentChecked, timeout)
    except BusUnavailableError as exc:
        why = f"{NOT_CHECKED}: no docker spawner of host {repository.host} answered ({exc.message})"
        return Check(name=CHECK_IMAGE, ok=False, detail=why)
    if answer.error is not None:
        why = f"{NOT_CHECKED}: {answer.spawner}: {answer.error.code}: {answer.error.message}"
        return Check(name=CHECK_IMAGE, ok=False, detail=why)
    return Check(name=CHECK_IMAGE, ok=answer.ok, detail=f"{answer.detail} ({answer.spawner})")
