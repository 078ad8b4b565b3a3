"""One attempt of one agent: worktree, sandbox, model loop, gates, commit, push, cleanup.

Every way out ends in a final state or a hand-back, and always in cleanup: the sandbox
is closed and the worktree removed (gitops salvages unpushed work first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from services.spawner import agentgit
from services.spawner.clients import Gates, GitOps
from services.spawner.errors import BudgetExhaustedError, StepFailedError, store_unavailable
from services.spawner.forecast import Forecast
from services.spawner.kills import Running
from services.spawner.mergequeue import MergeQueue
from services.spawner.merging import Where, merge_through_queue, pre_push_check
from services.spawner.readiness import environment_of
from services.spawner.runtime import tools
from services.spawner.runtime.loop import run_agent
from services.spawner.runtime.providers import make_provider
from services.spawner.runtime.types import AgentOutcome, AgentSpec, Bounds
from services.spawner.settings import SpawnerSettings
from services.spawner.spending import SpendMeter, SpendPolicy
from shared import tracing
from shared.environments import NO_ENVIRONMENT, Environments, PreparedEnvironment
from shared.errors import IllegalTransitionError, MosaicError, StaleAttemptError, is_stale
from shared.kill_metrics import KILL_LATENCY, KILLS
from shared.messages.agents import AgentState, TaskState
from shared.messages.base import utcnow
from shared.messages.conversation import ConversationEntry
from shared.messages.gates import GateCheckRequested, GateDecision, GatePhase
from shared.messages.gitops import (
    CommitMade,
    CommitRequested,
    PushDone,
    PushRequested,
    WorktreeReady,
    WorktreeRemoveRequested,
    WorktreeRequested,
)
from shared.messages.tasks import AgentType, SpawnAgentRequest, TaskQueued
from shared.sandbox.base import Sandbox, SandboxFactory, SandboxSpec
from shared.settings import ModelSettings, QualitySettings
from shared.tracker import AgentTracker, AttemptTracker

log = logging.getLogger(__name__)


class Verdict(Enum):
    """What the queue should do with the task message after an attempt."""

    DONE = "done"  # final state reached: ack
    RETRY = "retry"  # infrastructure failure with attempts left: nak with backoff
    HAND_BACK = "hand_back"  # this spawner is stopping: nak at once for another
    LOST = "lost"  # fenced off or lease lost: another spawner owns the task, leave the message


@dataclass
class RunContext:
    """What every agent run of this process shares."""

    tracker: AgentTracker
    gitops: GitOps
    gates: Gates
    sandboxes: SandboxFactory
    model: ModelSettings
    quality: QualitySettings
    settings: SpawnerSettings
    instance: str
    deployment: str | None = None
    """This system's id (``shared.deployment``): labels and scopes its sandbox containers."""
    default_image: str | None = None
    """The image a docker sandbox runs when the spec names none (for the record)."""
    environments: Environments | None = None
    """Builds repositories' declared environments; by default from ``sandboxes`` (its
    Docker client) and the tracker's Valkey, so no spawner runs without it."""
    merge_queue: MergeQueue | None = None
    """The merge queues (``options.merge = "queue"``); by default in the tracker's Valkey."""
    spending: SpendPolicy = field(default_factory=SpendPolicy)
    """Prices, the deployment's budget and the audit writer every run's spend goes by."""
    forecast: Forecast = field(init=False)
    """The conflict forecast: this process's running agents, told of overlapping pushes."""

    @property
    def host(self) -> str:
        """The host this spawner runs agents on: its gitops's and gates's host."""
        return self.gitops.host

    def __post_init__(self) -> None:
        self.forecast = Forecast(self.tracker, self.gitops)
        if self.environments is None:
            self.environments = Environments.for_sandboxes(self.sandboxes, self.tracker.store)
        if self.merge_queue is None:
            self.merge_queue = MergeQueue(
                self.tracker.store,
                lease_s=self.settings.merge_queue_lease_s,
                poll_s=self.settings.merge_queue_poll_s,
            )


class AgentRun:
    """Runs one attempt; ``execute`` returns what to do with the queue message."""

    def __init__(self, ctx: RunContext, task: TaskQueued, running: Running, attempt: int) -> None:
        self.ctx = ctx
        self.task = task
        self.running = running
        self.attempt = attempt
        self.agent_id = task.agent_id
        self.task_id = task.request.task_id
        self.tracker = AttemptTracker(ctx.tracker, self.agent_id, self.task_id, attempt)
        """Every write of this attempt carries ``attempt`` as its fencing token."""
        self._started = False  # the sandbox was created: this attempt did work
        self.request = task.request
        self._log = {"agent_id": self.agent_id, "task_id": self.task_id}
        self._worktree: WorktreeReady | None = None
        self._worktree_asked = False  # remove even if the create's answer never came
        self._sandbox: Sandbox | None = None
        self._environment: PreparedEnvironment = NO_ENVIRONMENT
        self._pushed: PushDone | None = None
        self._committed = False  # this attempt made a commit (pushed or not)
        self._told_unchanged = False  # the agent was told its worktree has no change
        self._unchanged = False  # it finished again anyway: complete with nothing pushed
        self._fatal: BaseException | None = None
        self._gate_results: list[dict[str, Any]] = []
        self._meter = SpendMeter(
            ctx.spending, self.tracker, task.request, ctx.model.model_name() or "unknown"
        )
        self.environment: str | None = None
        """What the agent's commands run on, when something more precise than the
        sandbox's default is known (a built environment); recorded as the attempt starts."""

    async def execute(self) -> Verdict:
        """Run to a final state; never leaves the sandbox or worktree behind."""
        try:
            outcome = await self._attempt()
            await self._cleanup()  # a final state means the worktree is already gone
            return await self._finish(outcome)
        except asyncio.CancelledError:
            _handled_cancellation()  # the writes below must not see it again
            if self.running.lease_lost or (self._fatal is not None and is_stale(self._fatal)):
                return await self._lost()
            if self.running.order is None:  # shutdown, not a kill: give the task back
                await self._hand_back()
                return Verdict.HAND_BACK
            await self._killed()
            return Verdict.DONE
        except (MosaicError, RedisError) as exc:
            if is_stale(exc):
                return await self._lost()
            error = store_unavailable(exc) if isinstance(exc, RedisError) else exc
            await self._cleanup()
            return await self._failed_attempt(error)
        finally:
            await asyncio.shield(self._cleanup())

    async def _lost(self) -> Verdict:
        """Another spawner owns the task (fenced off) or this one lost NATS (its lease):
        kill the sandbox and write nothing, not even a cleanup event; the worktree is
        left to the attempt that owns the task now (gitops would refuse us anyway)."""
        log.warning("attempt %d lost its task: stopping, writing nothing", self.attempt,
                    extra=self._log)  # fmt: skip
        self._worktree_asked = False
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(sandbox.close())
        return Verdict.LOST

    async def _attempt(self) -> AgentOutcome:
        ctx, req = self.ctx, self.request
        self._worktree_asked = True
        self._worktree = await ctx.gitops.create_worktree(
            WorktreeRequested(
                agent_id=self.agent_id,
                task_id=self.task_id,
                repository=req.context.repository,
                base_branch=req.context.branch,
                attempt=self.attempt,
            )
        )
        assert self._worktree.path is not None
        self._environment = await self._prepare_environment()
        if self._environment.image is not None:
            self.environment = f"image {self._environment.image} (from {self._environment.source})"
        spec = SandboxSpec(
            agent_id=self.agent_id,
            task_id=self.task_id,
            worktree=Path(self._worktree.path),
            network=req.options.network,
            owner=ctx.instance,
            deployment=ctx.deployment,
            image=self._environment.image,
            env=self._environment.env_pairs(),
            readonly=_shared_objects(self._worktree),
        )
        self._sandbox = await ctx.sandboxes.create(spec)
        self._started = True
        await self.tracker.transition(
            agent=AgentState.RUNNING,
            task=TaskState.EXECUTING,
            fields={
                "started_at": utcnow(),
                "worktree": self._worktree.path,
                "agent_branch": self._worktree.branch,
                **self._what_runs(spec),
            },
        )
        notes = ctx.forecast.watch(self.agent_id, self.task_id, *_where(req))  # until _cleanup
        outcome = await run_agent(
            AgentSpec(agent_id=self.agent_id, request=req),
            self._sandbox,
            make_provider(ctx.model, AgentSpec(agent_id=self.agent_id, request=req)),
            self._bounds(),
            self._progress,
            self._finish_check,
            notes,
            transcript=self._transcript,
            meter=self._meter.worker_call,
        )
        if self._fatal is not None:
            raise self._fatal
        return outcome

    def _what_runs(self, spec: SandboxSpec) -> dict[str, Any]:
        """The record's provider, model, sandbox and environment for this attempt."""
        assert self._sandbox is not None
        kind, model = self._sandbox.kind, self.ctx.model
        return {
            "sandbox": kind,
            "unsafe": self.ctx.sandboxes.unsafe,
            "environment": self.environment
            or environment_of(kind, spec.image or self.ctx.default_image),
            "provider": model.provider(),
            "model": model.model_name(),
        }

    async def _prepare_environment(self) -> PreparedEnvironment:
        """The repository's environment at the worktree's base commit, built if needed.

        A declaration error, a failed build or a sandbox that cannot run images ends the
        task ``failed`` (not retried); the build's progress goes out as agent events.
        """
        assert self._worktree is not None
        assert self.ctx.environments is not None
        repo = self._worktree.repo_path

        async def progress(detail: dict[str, Any]) -> None:
            await self.tracker.record("progress", {"step": "environment", **detail})

        return await self.ctx.environments.prepare(
            Path(repo) if repo else None, self._worktree.base_commit, progress=progress
        )

    def _bounds(self) -> Bounds:
        s = self.ctx.settings
        timeout = float(self.request.options.timeout or s.agent_default_timeout_s)
        return Bounds(max_turns=s.agent_max_turns, timeout_s=timeout, max_tokens=s.agent_max_tokens)

    async def _finish(self, outcome: AgentOutcome) -> Verdict:
        if outcome.status == "failed" and outcome.retryable:  # the model API, not the work
            reason = outcome.reason or "the model provider failed"
            return await self._failed_attempt(MosaicError(reason, retryable=True))
        fields: dict[str, Any] = {
            "completed_at": utcnow(),
            "turns": outcome.turns,
            "tokens_used": outcome.tokens_used,
        }
        if outcome.status == "finished":
            # Stored and shown to operators: masked with the scanner's rules.
            detail: dict[str, Any] = {"summary": tools.redact(outcome.summary)[:500]}
            if self._pushed is not None:
                fields |= {
                    "pushed_branch": self._pushed.remote_branch,
                    "pushed_commit": self._pushed.commit,
                }
            elif self._unchanged:
                detail["unchanged"] = "the worktree had no change: nothing was pushed"
            await self.tracker.transition(
                agent=AgentState.COMPLETED,
                task=TaskState.COMPLETED,
                fields=fields,
                detail=detail,
            )
        else:
            await self.tracker.transition(
                agent=AgentState.FAILED,
                task=TaskState.FAILED,
                fields={**fields, "error": outcome.reason},
                detail={"error": outcome.reason},
                reason=f"attempt {self.attempt}: {outcome.reason}",
            )
        return Verdict.DONE

    async def _progress(self, kind: str, detail: dict[str, Any]) -> None:
        try:
            await self._write_progress(kind, detail)
        except StaleAttemptError as exc:  # the loop swallows sink errors: stop it here
            self._fatal = exc
            self.running.task.cancel("fenced off: another attempt owns the task")
            # Take the cancellation here, before the loop runs the tool this progress
            # announced: a stale attempt must not touch the worktree the owner now uses.
            await asyncio.sleep(0)

    async def _write_progress(self, kind: str, detail: dict[str, Any]) -> None:
        fields: dict[str, Any] = {}
        if kind == "turn_started":
            fields["turns"] = detail.get("turn", 0)
        elif kind == "tool_called":
            fields["last_tool"] = detail.get("tool")
        elif kind == "tokens_used":
            fields["tokens_used"] = detail.get("total", 0)
        if fields:
            await self.tracker.update(fields)
        await self.tracker.record("progress", {"step": kind, **detail})

    async def _transcript(self, entries: list[ConversationEntry]) -> None:
        stamped = [e.model_copy(update={"attempt": self.attempt}) for e in entries]
        await self.tracker.store.append_conversation(self.agent_id, stamped, fence=self.attempt)

    async def _finish_check(self, summary: str) -> str | None:
        try:
            return await self._gate_commit_push(summary)
        except Exception as exc:  # the loop must not swallow infrastructure failures
            # Only errors: a cancellation is the wall clock (the loop reports the
            # time-out), a kill or a shutdown, and each already reaches execute() as such.
            self._fatal = exc
            raise

    async def _gate_commit_push(self, summary: str) -> str | None:
        ctx, req = self.ctx, self.request
        assert self._worktree is not None
        assert self._worktree.path is not None
        yolo = ctx.quality.yolo_mode
        decision = await self._check_gates(
            "pre-commit", self._worktree.path, self._worktree.base_commit, None
        )
        if decision.error is not None:
            raise StepFailedError("gates", decision.error)
        if not decision.approved:
            return _rejection_text(decision)
        where = {
            "agent_id": self.agent_id,
            "task_id": self.task_id,
            "repository": req.context.repository,
            "base_branch": req.context.branch,
            "attempt": self.attempt,
        }
        title = req.context.work_items[0].splitlines()[0][:72]
        body = tools.redact(summary)[:4000]  # a token in the summary must not be committed
        commit = await ctx.gitops.commit(
            CommitRequested(
                **where, message=f"{title}\n\n{body}\n\nAgent: {self.agent_id}", yolo=yolo
            )
        )
        if commit.error is not None:
            if commit.error.code == "secret_found":
                return (
                    f"Commit blocked by the secret scan: {commit.error.message}. "
                    "Remove the secret and finish again."
                )
            if commit.error.code == "wrong_branch":
                return f"Not committed: {commit.error.message}. Then finish again."
            raise StepFailedError("commit", commit.error)
        if commit.commit is not None:
            self._committed = True
            assert self._sandbox is not None
            if not await agentgit.align(self._sandbox, commit.commit):
                await self._no_git("the commit of its leftovers was not checked out there")
        elif self._branch_has_no_work(commit):
            # Nothing the agent did reached the worktree: pushing would publish the base
            # as if it were the work. Tell the agent once; a second finish confirms that
            # the task needs no change, and the run completes with nothing pushed (at
            # once for an agent type that cannot change files, such as the reviewer).
            if not self._told_unchanged and _can_change(req.agent_type):
                self._told_unchanged = True
                log.warning("finish with an unchanged worktree: sent back", extra=self._log)
                return _UNCHANGED_TEXT
            log.warning("finished again with no change: nothing pushed", extra=self._log)
            self._unchanged = True
            return None
        if req.options.merge == "queue":
            return await self._merge_through_queue()
        pre_push = await pre_push_check(
            ctx.gitops,
            Where(self.agent_id, self.task_id, req.context.repository, req.context.branch),
            self._worktree.base_commit,
            self._worktree.path,
            self._check_gates,
        )
        if pre_push is not None:
            if pre_push.error is not None:
                raise StepFailedError("gates", pre_push.error)
            if not pre_push.approved:
                return _rejection_text(pre_push, "pre-push")
        pushed = await ctx.gitops.push(PushRequested(**where))
        if pushed.conflicts:
            assert self._sandbox is not None
            return await agentgit.conflict_text(self._sandbox, req.context.branch, pushed,
                                                self._no_git)  # fmt: skip
        if pushed.error is not None:
            raise StepFailedError("push", pushed.error)
        self._pushed = pushed
        return None

    async def _merge_through_queue(self) -> str | None:
        """Integrate through the merge queue (services/spawner/merging.py); the text for
        the agent on a conflict or a pre-push gate rejection, ``None`` once merged."""
        ctx, req = self.ctx, self.request
        assert ctx.merge_queue is not None
        where = Where(
            self.agent_id, self.task_id, req.context.repository, req.context.branch, self.attempt
        )
        result = await merge_through_queue(
            ctx.gitops,
            ctx.merge_queue,
            self.tracker,
            where,
            self._check_gates,
            ctx.settings.merge_queue_attempts,
        )
        if result.conflict is not None:
            assert self._sandbox is not None
            return await agentgit.conflict_text(
                self._sandbox, req.context.branch, result.conflict, self._no_git
            )
        if result.rejected is not None:
            return _rejection_text(result.rejected, "pre-push")
        assert result.landed is not None
        self._pushed = PushDone(
            remote_branch=result.landed.remote_branch, commit=result.landed.head
        )
        return None

    async def _check_gates(
        self, phase: GatePhase, worktree: str, base: str | None, commit: str | None
    ) -> GateDecision:
        """Run the task's gates on ``worktree`` (at ``commit`` when known) and record them."""
        ctx, req = self.ctx, self.request
        decision = await ctx.gates.check(
            GateCheckRequested(
                agent_id=self.agent_id,
                task_id=self.task_id,
                worktree=worktree,
                phase=phase,
                profile=req.gate_profile or ctx.quality.default_gate_profile,
                yolo=ctx.quality.yolo_mode,
                base=base,
                work_items=tuple(req.context.work_items),
                environment_image=self._environment.image,
                environment_env=self._environment.env,
            )
        )
        await self._record_gates(decision, phase, commit)
        await self._meter.gate_calls(decision)  # the reviewer's calls are the task's spend
        return decision

    async def _no_git(self, what: str) -> None:
        """Say (log and an agent event) that the sandbox has no git, and what that skipped."""
        log.warning("no git in the sandbox: %s", what, extra=self._log)
        await self.tracker.record(
            "progress", {"step": "git_unavailable", "detail": f"no git in the sandbox: {what}"}
        )

    def _branch_has_no_work(self, commit: CommitMade) -> bool:
        """Nothing committed now, in this attempt or before: the branch is still its base."""
        if self._committed:
            return False
        assert self._worktree is not None
        base = self._worktree.base_commit
        return commit.head is None or base is None or commit.head == base

    async def _record_gates(
        self, decision: GateDecision, phase: GatePhase, commit: str | None
    ) -> None:
        # gate output is a command's output: mask secrets before it is stored and shown
        results = [
            r.model_copy(update={"excerpt": tools.redact(r.excerpt)}).model_dump(mode="json")
            for r in decision.results
        ]
        self._gate_results = results
        await self.tracker.update({"gates": results})
        detail: dict[str, Any] = {
            "approved": decision.approved,
            "yolo": decision.yolo,
            "phase": phase,
            "results": results,
        }
        if commit is not None:
            detail["commit"] = commit
        await self.tracker.record("gate", detail)

    async def _failed_attempt(self, exc: MosaicError) -> Verdict:
        max_attempts = self.request.options.max_retries + 1
        reason = f"attempt {self.attempt}: {exc.message}"
        retry = exc.retryable and self.attempt < max_attempts
        try:
            if retry:
                log.warning("attempt failed, will retry: %s", exc.message, extra=self._log)
                await self._back_to_pending(reason)
                return Verdict.RETRY
            log.error("agent failed: %s", exc.message, extra=self._log)
            fields: dict[str, Any] = {"completed_at": utcnow(), "error": exc.message}
            detail: dict[str, Any] = {"error": reason}
            if isinstance(exc, BudgetExhaustedError):  # stopped, its work salvaged by cleanup
                fields["stop_reason"] = detail["reason"] = "budget"
            await self.tracker.transition(
                agent=AgentState.FAILED,
                task=TaskState.FAILED,
                fields=fields,
                detail=detail,
                reason=reason,
            )
        except StaleAttemptError:
            return await self._lost()
        except IllegalTransitionError as lost:  # ended meanwhile (a kill by the killswitch)
            log.info("attempt ended elsewhere: %s", lost.message, extra=self._log)
        except RedisError:
            # Valkey is down: nothing can be recorded. The message goes back with a delay;
            # its next delivery finds the task still active and starts the next attempt
            # (this one is counted), so maxRetries still bounds the retries.
            log.warning("cannot record the attempt's end (Valkey unreachable): %s", reason,
                        extra=self._log, exc_info=True)  # fmt: skip
            return Verdict.RETRY
        return Verdict.DONE

    async def _back_to_pending(self, reason: str, fields: dict[str, Any] | None = None) -> None:
        record = await self.tracker.store.require_agent(self.agent_id)
        agent = AgentState.SPAWNING if record.state == AgentState.RUNNING else None
        await self.tracker.transition(
            agent=agent,
            task=TaskState.PENDING,
            fields={"error": reason, **(fields or {})},
            detail={"retry": reason},
            reason=reason,
        )

    async def _hand_back(self) -> None:
        """Give the task back to the queue. It counts as an attempt only if this one did
        work (its sandbox was created, so the model may have been called); otherwise the
        attempt number is given back. Cleanup comes first: once the number is given back,
        the next claim reuses it, and this attempt's late worktree removal would pass the
        gitops fence and remove the new attempt's worktree."""
        reason = "handed back: its spawner stopped"
        fields: dict[str, Any] = {}
        if not self._started:
            reason += " before the attempt started (not counted)"
            fields["attempts"] = self.attempt - 1
        try:
            await asyncio.shield(self._cleanup())
            await self._back_to_pending(reason, fields)
        except (MosaicError, RedisError):
            log.warning("could not hand back", extra=self._log, exc_info=True)

    async def _killed(self) -> None:
        order = self.running.order
        reason = order.reason if order and order.reason else "no reason given"
        tracing.annotate({"mosaic.killed": True})
        if self._sandbox is not None:
            with contextlib.suppress(Exception):  # the killswitch may have removed it already
                await self._sandbox.kill()
        try:
            await self.tracker.transition(
                agent=AgentState.KILLED,
                task=TaskState.FAILED,
                fields={"completed_at": utcnow(), "error": f"killed: {reason}"},
                detail={
                    "reason": reason,
                    "requestedBy": order.requested_by if order else None,
                    "by": "spawner",
                },
            )
        except MosaicError:  # someone else (killswitch) recorded the end first
            log.info("kill already recorded elsewhere", extra=self._log)
            return
        if self._sandbox is not None:  # gone, not just stopped, before the kill counts as done
            with contextlib.suppress(Exception):
                await self._sandbox.close()
        if self.running.ordered_at is not None:
            scope = self.running.scope
            KILL_LATENCY.labels("spawner", "spawner", scope).observe(
                time.monotonic() - self.running.ordered_at
            )
            KILLS.labels("spawner", "spawner", scope).inc()

    async def _cleanup(self) -> None:
        """Close the sandbox and remove the worktree; safe to call again."""
        self.ctx.forecast.forget(self.agent_id)
        detail: dict[str, Any] = {}
        sandbox, self._sandbox = self._sandbox, None
        asked, self._worktree_asked = self._worktree_asked, False
        if sandbox is not None:
            try:
                await sandbox.close()
                detail["sandbox"] = "removed"
            except Exception:
                log.exception("sandbox cleanup failed", extra=self._log)
        if asked:
            req = self.request
            try:
                removed = await self.ctx.gitops.remove_worktree(
                    WorktreeRemoveRequested(
                        agent_id=self.agent_id,
                        task_id=self.task_id,
                        repository=req.context.repository,
                        base_branch=req.context.branch,
                        attempt=self.attempt,
                    )
                )
                detail["worktree"] = "removed" if removed.removed else "kept"
                fields: dict[str, Any] = {"worktree": None}
                if removed.salvage_branch:
                    fields["salvage_branch"] = removed.salvage_branch
                    detail["salvageBranch"] = removed.salvage_branch
                await self.tracker.update(fields)
            except Exception:
                log.exception("worktree cleanup failed; the reaper will retry", extra=self._log)
        if detail:
            try:
                await self.tracker.record("cleanup", detail)
            except (MosaicError, RedisError):  # fenced off, or Valkey down: the end says more
                log.warning("could not record the cleanup", extra=self._log, exc_info=True)


def _handled_cancellation() -> None:
    """Clear the current task's pending cancellation once it has been caught here, so
    ``raise_if_cancelled`` in the attempt's state writes lets the hand-back and kill
    records through."""
    task = asyncio.current_task()
    if task is not None:
        while task.cancelling():
            task.uncancel()


def _where(request: SpawnAgentRequest) -> tuple[str, str]:
    """The repository and base branch the agent works on."""
    return request.context.repository, request.context.branch


def _can_change(agent_type: AgentType) -> bool:
    """Whether the agent has a tool that changes files (a reviewer only reads)."""
    allowed = set(tools.TOOL_SETS.get(agent_type, ()))
    return bool(allowed & {"write_file", "edit_file", "run_command"})


_UNCHANGED_TEXT = (
    "Nothing to commit: the worktree has no change against the base branch, so none of "
    "your edits are there. If the task needs changes, make them (write_file, edit_file) "
    "and call finish again. If it needs no change at all, call finish again to end "
    "without pushing anything."
)


def _rejection_text(decision: GateDecision, phase: GatePhase = "pre-commit") -> str:
    if phase == "pre-push":
        lines = [
            "The pre-push quality gates (run again on your change on top of the updated "
            "base) rejected it:"
        ]
    else:
        lines = ["Quality gates rejected the change:"]
    for result in decision.results:
        if result.status == "failed":
            lines.append(f"- {result.name} failed:\n{result.excerpt[-2000:]}")
    lines.append("Fix these and call finish again.")
    return "\n".join(lines)


def _shared_objects(worktree: WorktreeReady) -> tuple[Path, ...]:
    """The cache objects the agent's repository borrows, mounted read-only."""
    return (Path(worktree.shared_objects),) if worktree.shared_objects else ()
