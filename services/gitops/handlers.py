"""Request/reply handlers: decode the request, call the logic, answer with a reply model.

Every request gets an answer, even a malformed one: errors travel as ``Failure`` in the
reply's ``error`` field, never as an exception across the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from opentelemetry.trace import Span
from pydantic import ValidationError

from services.gitops import basestatus, changes, commits, conflicts, integrate, worktrees
from services.gitops.errors import ConflictError, GitOpsError, SecretFoundError
from services.gitops.fencing import Fences
from services.gitops.mergeaudit import MergeAudit
from services.gitops.repos import RepoCache
from shared import subjects, tracing
from shared.messages.base import Failure, Message
from shared.messages.gitops import (
    BaseStatus,
    BaseStatusRequested,
    ChangesFound,
    ChangesRequested,
    CommitMade,
    CommitRequested,
    Integrated,
    IntegrateRequested,
    Landed,
    LandRequested,
    PushDone,
    PushRequested,
    RepoPushed,
    SecretFinding,
    WorktreeReady,
    WorktreeRemoved,
    WorktreeRemoveRequested,
    WorktreeRequested,
)

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=Message)
ReplyT = TypeVar("ReplyT", bound=Message)


def failure(exc: GitOpsError) -> Failure:
    """The wire form of a gitops error."""
    return Failure(code=exc.code, message=exc.message, retryable=exc.retryable, paths=exc.paths)


def error_reply(reply_type: type[ReplyT], exc: GitOpsError) -> ReplyT:
    """A reply of ``reply_type`` carrying ``exc`` (with conflicts or findings when known)."""
    fields: dict[str, object] = {"error": failure(exc)}
    if isinstance(exc, ConflictError) and reply_type is PushDone:
        fields["conflicts"] = exc.paths
        fields["base_commit"] = exc.base_commit
    if isinstance(exc, SecretFoundError) and reply_type is CommitMade:
        fields["findings"] = tuple(
            SecretFinding(path=path, line=line, rule=rule) for path, line, rule in exc.findings
        )
    return reply_type.model_validate(fields)


async def answer(
    message: NatsMessage,
    request_type: type[RequestT],
    reply_type: type[ReplyT],
    work: Callable[[RequestT], Awaitable[ReplyT]],
) -> bytes:
    """Run ``work`` on the decoded request and serialise whatever comes of it, as a span
    continuing the requester's trace (its context came in the request's headers)."""
    subject = message.raw_message.subject
    with tracing.serving(subject.removeprefix("mosaic."), message.headers) as span:
        return await _answer(message.body, request_type, reply_type, work, span)


async def _answer(
    body: bytes,
    request_type: type[RequestT],
    reply_type: type[ReplyT],
    work: Callable[[RequestT], Awaitable[ReplyT]],
    span: Span,
) -> bytes:
    try:
        request = request_type.from_bytes(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        bad = Failure(code="invalid_request", message=f"bad {request_type.__name__}: {problems}")
        return reply_type.model_validate({"error": bad}).to_bytes()
    extra = {
        "agent_id": getattr(request, "agent_id", None),
        "task_id": getattr(request, "task_id", None),
    }
    for key, attribute in (("agent_id", tracing.AGENT_ID), ("task_id", tracing.TASK_ID)):
        if extra[key]:
            span.set_attribute(attribute, str(extra[key]))
    try:
        reply = await work(request)
    except GitOpsError as exc:
        log.info("%s refused: %s (%s)", request_type.__name__, exc.code, exc.message, extra=extra)
        reply = error_reply(reply_type, exc)
    except Exception as exc:
        log.exception("%s failed unexpectedly", request_type.__name__, extra=extra)
        crash = GitOpsError(
            f"internal error: {type(exc).__name__}", code="internal", retryable=True
        )
        reply = error_reply(reply_type, crash)
    error = getattr(reply, "error", None)
    if isinstance(error, Failure):
        span.set_attribute("mosaic.error_code", error.code)
    return reply.to_bytes()


def register(broker: NatsBroker, cache: RepoCache) -> None:
    """Subscribe the gitops handlers (queue group ``gitops``) on ``broker``."""
    workers = max(2, cache.settings.max_concurrency)
    fences = Fences(cache.root / ".fences")  # every request of an attempt is fenced

    @broker.subscriber(
        subjects.GITOPS_WORKTREE_CREATE, queue=subjects.GITOPS_QUEUE, max_workers=workers
    )
    async def worktree_create(message: NatsMessage) -> bytes:
        return await answer(
            message,
            WorktreeRequested,
            WorktreeReady,
            lambda request: fences.run(request, lambda: worktrees.create_worktree(cache, request)),
        )

    @broker.subscriber(
        subjects.GITOPS_WORKTREE_REMOVE, queue=subjects.GITOPS_QUEUE, max_workers=workers
    )
    async def worktree_remove(message: NatsMessage) -> bytes:
        return await answer(
            message,
            WorktreeRemoveRequested,
            WorktreeRemoved,
            lambda request: fences.run(request, lambda: worktrees.remove_worktree(cache, request)),
        )

    @broker.subscriber(subjects.GITOPS_COMMIT, queue=subjects.GITOPS_QUEUE, max_workers=workers)
    async def commit(message: NatsMessage) -> bytes:
        return await answer(
            message,
            CommitRequested,
            CommitMade,
            lambda request: fences.run(request, lambda: commits.commit(cache, request)),
        )

    @broker.subscriber(subjects.GITOPS_PUSH, queue=subjects.GITOPS_QUEUE, max_workers=workers)
    async def push(message: NatsMessage) -> bytes:
        async def push_and_announce(request: PushRequested) -> PushDone:
            done = await fences.run(request, lambda: conflicts.push(cache, request))
            await announce_push(broker, cache, request, done)
            return done

        return await answer(message, PushRequested, PushDone, push_and_announce)

    @broker.subscriber(subjects.GITOPS_CHANGES, queue=subjects.GITOPS_QUEUE, max_workers=workers)
    async def agent_changes(message: NatsMessage) -> bytes:
        return await answer(
            message,
            ChangesRequested,
            ChangesFound,
            lambda request: changes.agent_changes(cache, request),
        )

    @broker.subscriber(
        subjects.GITOPS_BASE_STATUS, queue=subjects.GITOPS_QUEUE, max_workers=workers
    )
    async def base_status(message: NatsMessage) -> bytes:
        return await answer(
            message,
            BaseStatusRequested,
            BaseStatus,
            lambda request: basestatus.base_status(cache, request),
        )

    @broker.subscriber(subjects.GITOPS_INTEGRATE, queue=subjects.GITOPS_QUEUE, max_workers=workers)
    async def integrate_branch(message: NatsMessage) -> bytes:
        return await answer(
            message,
            IntegrateRequested,
            Integrated,
            lambda request: fences.run(request, lambda: integrate.integrate(cache, request)),
        )

    merges = MergeAudit(broker)

    @broker.subscriber(subjects.GITOPS_LAND, queue=subjects.GITOPS_QUEUE, max_workers=workers)
    async def land(message: NatsMessage) -> bytes:
        async def land_and_announce(request: LandRequested) -> Landed:
            landed = await fences.run(request, lambda: merges.land(cache, request))
            if landed.commit is not None:  # the agent branch was pushed too: forecast it
                where = PushRequested(
                    agent_id=request.agent_id,
                    task_id=request.task_id,
                    repository=request.repository,
                    base_branch=request.base_branch,
                )
                pushed = PushDone(remote_branch=landed.remote_branch, commit=landed.head)
                await announce_push(broker, cache, where, pushed)
            return landed

        return await answer(message, LandRequested, Landed, land_and_announce)


async def announce_push(
    broker: NatsBroker, cache: RepoCache, request: PushRequested, done: PushDone
) -> None:
    """Tell spawners what the pushed branch changes (``mosaic.repo.pushed``, advisory).

    The push has landed whatever happens here: a diff or publish that fails is logged,
    never turned into a failed push.
    """
    if done.commit is None or done.remote_branch is None:
        return
    extra = {"agent_id": request.agent_id, "task_id": request.task_id}
    try:
        found = await asyncio.to_thread(
            changes.pushed_changes, cache, request.repository, done.commit, request.base_branch
        )
        event = RepoPushed(
            repository=request.repository,
            base_branch=request.base_branch,
            agent_id=request.agent_id,
            task_id=request.task_id,
            branch=done.remote_branch,
            commit=done.commit,
            base_commit=found.base_commit,
            files=found.files,
            truncated=found.truncated,
        )
        await broker.publish(event.to_bytes(), subjects.REPO_PUSHED)
    except Exception:
        log.warning("could not announce the push of %s", done.remote_branch, exc_info=True,
                    extra=extra)  # fmt: skip
