"""Request/reply handlers: decode the request, call the logic, answer with a reply model.

Every request gets an answer, even a malformed one: errors travel as ``Failure`` in the
reply's ``error`` field, never as an exception across the bus.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from pydantic import ValidationError

from services.gitops import commits, conflicts, worktrees
from services.gitops.errors import ConflictError, GitOpsError, SecretFoundError
from services.gitops.fencing import Fences
from services.gitops.repos import RepoCache
from shared import subjects
from shared.messages.base import Failure, Message
from shared.messages.gitops import (
    CommitMade,
    CommitRequested,
    PushDone,
    PushRequested,
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
    if isinstance(exc, SecretFoundError) and reply_type is CommitMade:
        fields["findings"] = tuple(
            SecretFinding(path=path, line=line, rule=rule) for path, line, rule in exc.findings
        )
    return reply_type.model_validate(fields)


async def answer(
    body: bytes,
    request_type: type[RequestT],
    reply_type: type[ReplyT],
    work: Callable[[RequestT], Awaitable[ReplyT]],
) -> bytes:
    """Run ``work`` on the decoded request and serialise whatever comes of it."""
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
            message.body,
            WorktreeRequested,
            WorktreeReady,
            lambda request: fences.run(request, lambda: worktrees.create_worktree(cache, request)),
        )

    @broker.subscriber(
        subjects.GITOPS_WORKTREE_REMOVE, queue=subjects.GITOPS_QUEUE, max_workers=workers
    )
    async def worktree_remove(message: NatsMessage) -> bytes:
        return await answer(
            message.body,
            WorktreeRemoveRequested,
            WorktreeRemoved,
            lambda request: fences.run(request, lambda: worktrees.remove_worktree(cache, request)),
        )

    @broker.subscriber(subjects.GITOPS_COMMIT, queue=subjects.GITOPS_QUEUE, max_workers=workers)
    async def commit(message: NatsMessage) -> bytes:
        return await answer(
            message.body,
            CommitRequested,
            CommitMade,
            lambda request: fences.run(request, lambda: commits.commit(cache, request)),
        )

    @broker.subscriber(subjects.GITOPS_PUSH, queue=subjects.GITOPS_QUEUE, max_workers=workers)
    async def push(message: NatsMessage) -> bytes:
        return await answer(
            message.body,
            PushRequested,
            PushDone,
            lambda request: fences.run(request, lambda: conflicts.push(cache, request)),
        )
