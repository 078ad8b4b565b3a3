"""Request/reply handlers: typed (FastStream validates the request), call the logic,
answer with a reply model.

Every request gets an answer: a malformed one from the broker's ``shared.replies``
middleware, a refused or failed one here; errors travel as ``Failure`` in the reply's
``error`` field, never as an exception across the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from services.gitops import (
    agentdiff,
    basestatus,
    changes,
    commits,
    conflicts,
    integrate,
    precheck,
    worktrees,
)
from services.gitops.errors import ConflictError, GitOpsError, SecretFoundError
from services.gitops.fencing import Fences
from services.gitops.mergeaudit import MergeAudit
from services.gitops.repos import RepoCache
from shared import subjects, tracing
from shared.messages.base import Failure, Message
from shared.messages.checks import (
    RepositoryChecked,
    RepositoryCheckRequested,
    RepositoryPathFound,
    RepositoryPathRequested,
)
from shared.messages.diffs import DiffFound, DiffRequested
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
from shared.subjects import GitOp

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
    request: RequestT,
    message: NatsMessage,
    reply_type: type[ReplyT],
    work: Callable[[RequestT], Awaitable[ReplyT]],
) -> ReplyT:
    """Run ``work`` on the request, as a span continuing the requester's trace (its
    context came in the request's headers); a gitops error becomes the reply's ``error``."""
    ids = {
        "agent_id": getattr(request, "agent_id", None),
        "task_id": getattr(request, "task_id", None),
    }
    name = type(request).__name__
    subject = message.raw_message.subject
    with tracing.serving(
        subjects.span_name(subject),
        message.headers,
        agent_id=ids["agent_id"],
        task_id=ids["task_id"],
    ) as span:
        try:
            reply = await work(request)
        except GitOpsError as exc:
            log.info("%s refused: %s (%s)", name, exc.code, exc.message, extra=ids)
            reply = error_reply(reply_type, exc)
        except Exception as exc:
            log.exception("%s failed unexpectedly", name, extra=ids)
            crash = GitOpsError(
                f"internal error: {type(exc).__name__}", code="internal", retryable=True
            )
            reply = error_reply(reply_type, crash)
        error = getattr(reply, "error", None)
        if isinstance(error, Failure):
            span.set_attribute("mosaic.error_code", error.code)
        return reply


def register(broker: NatsBroker, cache: RepoCache, host: str) -> None:
    """Subscribe the gitops handlers on ``broker``: the agents' operations on this host's
    subjects (``mosaic.gitops.<host>.…``, queue group ``gitops-<host>``: the instances of
    one host share its workspace), the read-only questions any host answers unscoped."""
    workers = max(2, cache.settings.max_concurrency)
    queue = subjects.gitops_queue(host)

    def mine(operation: GitOp) -> str:
        return subjects.gitops(host, operation)

    fences = Fences(cache.root / ".fences")  # every request of an attempt is fenced

    @broker.subscriber(mine(GitOp.WORKTREE_CREATE), queue=queue, max_workers=workers)
    async def worktree_create(request: WorktreeRequested, message: NatsMessage) -> WorktreeReady:
        return await answer(
            request,
            message,
            WorktreeReady,
            lambda request: fences.run(request, lambda: worktrees.create_worktree(cache, request)),
        )

    @broker.subscriber(mine(GitOp.WORKTREE_REMOVE), queue=queue, max_workers=workers)
    async def worktree_remove(
        request: WorktreeRemoveRequested, message: NatsMessage
    ) -> WorktreeRemoved:
        return await answer(
            request,
            message,
            WorktreeRemoved,
            lambda request: fences.run(request, lambda: worktrees.remove_worktree(cache, request)),
        )

    @broker.subscriber(mine(GitOp.COMMIT), queue=queue, max_workers=workers)
    async def commit(request: CommitRequested, message: NatsMessage) -> CommitMade:
        return await answer(
            request,
            message,
            CommitMade,
            lambda request: fences.run(request, lambda: commits.commit(cache, request)),
        )

    @broker.subscriber(mine(GitOp.PUSH), queue=queue, max_workers=workers)
    async def push(request: PushRequested, message: NatsMessage) -> PushDone:
        async def push_and_announce(request: PushRequested) -> PushDone:
            done = await fences.run(request, lambda: conflicts.push(cache, request))
            await announce_push(broker, cache, request, done)
            return done

        return await answer(request, message, PushDone, push_and_announce)

    @broker.subscriber(mine(GitOp.CHANGES), queue=queue, max_workers=workers)
    async def agent_changes(request: ChangesRequested, message: NatsMessage) -> ChangesFound:
        return await answer(
            request,
            message,
            ChangesFound,
            lambda request: changes.agent_changes(cache, request),
        )

    @broker.subscriber(mine(GitOp.DIFF), queue=queue, max_workers=workers)
    async def agent_diff(request: DiffRequested, message: NatsMessage) -> DiffFound:
        return await answer(
            request,
            message,
            DiffFound,
            lambda request: agentdiff.agent_diff(cache, request),
        )

    @broker.subscriber(mine(GitOp.BASE_STATUS), queue=queue, max_workers=workers)
    async def base_status(request: BaseStatusRequested, message: NatsMessage) -> BaseStatus:
        return await answer(
            request,
            message,
            BaseStatus,
            lambda request: basestatus.base_status(cache, request),
        )

    @broker.subscriber(subjects.GITOPS_CHECK, queue=subjects.GITOPS_ANY_QUEUE, max_workers=workers)
    async def check_repository(
        request: RepositoryCheckRequested, message: NatsMessage
    ) -> RepositoryChecked:
        return await answer(
            request,
            message,
            RepositoryChecked,
            lambda request: precheck.check_repository(cache, request, host),
        )

    @broker.subscriber(
        subjects.GITOPS_REPOSITORY_EXISTS, queue=subjects.GITOPS_ANY_QUEUE, max_workers=workers
    )
    async def repository_exists(
        request: RepositoryPathRequested, message: NatsMessage
    ) -> RepositoryPathFound:
        return await answer(
            request,
            message,
            RepositoryPathFound,
            lambda request: precheck.path_exists(request, host),
        )

    @broker.subscriber(mine(GitOp.INTEGRATE), queue=queue, max_workers=workers)
    async def integrate_branch(request: IntegrateRequested, message: NatsMessage) -> Integrated:
        return await answer(
            request,
            message,
            Integrated,
            lambda request: fences.run(request, lambda: integrate.integrate(cache, request)),
        )

    merges = MergeAudit(broker)

    @broker.subscriber(mine(GitOp.LAND), queue=queue, max_workers=workers)
    async def land(request: LandRequested, message: NatsMessage) -> Landed:
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

        return await answer(request, message, Landed, land_and_announce)


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
