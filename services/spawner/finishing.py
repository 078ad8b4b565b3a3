"""The finish step: when the agent calls ``finish``, gates, commit, then push or merge.

The steps run in order and ``FinishPolicy`` answers after each one: accept (the run
ends ``completed``), send back (the text goes to the agent, which works on), or go on.
The step keeps what was accepted; the run reads it once the model loop has ended.
An infrastructure failure (gates that did not run, a push gitops could not do) is kept
too, so the run fails the attempt even though the loop swallows errors of its check.
"""

from __future__ import annotations

import logging
from typing import Any

from services.spawner import agentgit
from services.spawner.attempt import Attempt
from services.spawner.finish_policy import (
    UNCHANGED_TEXT,
    Accept,
    FinishPolicy,
    Resolve,
    SendBack,
)
from services.spawner.merging import merge_through_queue, pre_push_check
from services.spawner.run_context import RunContext
from services.spawner.runtime import tools
from services.spawner.spending import SpendMeter
from services.spawner.workspace import Worktree
from shared.environments import PreparedEnvironment
from shared.messages.agents import AgentPatch
from shared.messages.gates import GateCheckRequested, GateDecision, GatePhase
from shared.messages.gitops import CommitMade, CommitRequested, PushRequested
from shared.sandbox.base import Sandbox

log = logging.getLogger(__name__)


class Finish:
    """The loop's finish check for one attempt (``__call__``), and what it accepted."""

    def __init__(
        self,
        ctx: RunContext,
        attempt: Attempt,
        worktree: Worktree,
        sandbox: Sandbox,
        environment: PreparedEnvironment,
        meter: SpendMeter,
    ) -> None:
        self._ctx = ctx
        self._attempt = attempt
        self._worktree = worktree
        self._sandbox = sandbox
        self._environment = environment
        self._meter = meter
        self._policy = FinishPolicy(attempt.request.agent_type, worktree.base_commit)
        self.accepted: Accept | None = None
        """The finish that stood (set once, by the last call)."""
        self.failure: Exception | None = None
        """An error of a step (not a cancellation): the attempt fails with it."""

    async def __call__(self, summary: str) -> str | None:
        """``None`` when the finish is accepted, else the text for the agent."""
        try:
            answer = await self._steps(summary)
        except Exception as exc:  # the loop must not swallow infrastructure failures
            # Only errors: a cancellation is the wall clock (the loop reports the
            # time-out), a kill or a shutdown, and each already reaches the run as such.
            self.failure = exc
            raise
        if isinstance(answer, Accept):
            self.accepted = answer
            return None
        return answer

    async def _steps(self, summary: str) -> Accept | str:
        policy, worktree = self._policy, self._worktree
        base = worktree.base_commit
        # The agent's git says nothing changed: the gates would check the base; let the
        # commit step, which looks for itself, say so first (a no-op agent's two
        # finishes ran the project's tests twice). What it finds after all is gated
        # below, before anything is pushed.
        unchanged = base is not None and await agentgit.looks_unchanged(self._sandbox, base)
        if not unchanged:
            decision = await self.check_gates("pre-commit", worktree.path, base, None)
            if isinstance(back := policy.gates(decision, "pre-commit"), SendBack):
                return back.text
        made = await self._commit(summary)
        after_commit = policy.commit(made)
        if isinstance(after_commit, SendBack):
            if after_commit.text is UNCHANGED_TEXT:
                log.warning("finish with an unchanged worktree: sent back",
                            extra=self._attempt.log)  # fmt: skip
                await self._gates_not_run()
            return after_commit.text
        if isinstance(after_commit, Accept):
            log.warning("finished again with no change: nothing pushed", extra=self._attempt.log)
            await self._gates_not_run()
            return after_commit
        if made.commit is not None and not await agentgit.align(self._sandbox, made.commit):
            await self.no_git("the commit of its leftovers was not checked out there")
        if unchanged:  # the commit step found a change the agent's git did not show
            decision = await self.check_gates("pre-commit", worktree.path, base, made.commit)
            if isinstance(back := policy.gates(decision, "pre-commit"), SendBack):
                return back.text
        answer = await self._integrate()
        if isinstance(answer, Resolve):
            return await agentgit.conflict_text(
                self._sandbox, self._attempt.base_branch, answer.pushed, self.no_git
            )
        if isinstance(answer, SendBack):
            return answer.text
        return answer

    async def _commit(self, summary: str) -> CommitMade:
        attempt = self._attempt
        title = attempt.request.context.work_items[0].splitlines()[0][:72]
        body = tools.redact(summary)[:4000]  # a token in the summary must not be committed
        return await self._ctx.gitops.commit(
            CommitRequested(
                **attempt.where(),
                message=f"{title}\n\n{body}\n\nAgent: {attempt.agent_id}",
                yolo=self._ctx.quality.yolo_mode,
            )
        )

    async def _integrate(self) -> Accept | Resolve | SendBack:
        """Push the branch, or land it through the merge queue (``options.merge``)."""
        ctx, attempt = self._ctx, self._attempt
        if attempt.request.options.merge == "queue":
            if ctx.merge_queue is None:
                raise AssertionError("RunContext always has its merge queue")
            result = await merge_through_queue(
                ctx.gitops,
                ctx.merge_queue,
                attempt.tracker,
                attempt.place(),
                self.check_gates,
                ctx.settings.merge_queue_attempts,
            )
            return self._policy.merged(result)
        pre_push = await pre_push_check(
            ctx.gitops,
            attempt.place(fenced=False),
            self._worktree.base_commit,
            self._worktree.path,
            self.check_gates,
        )
        if pre_push is not None and isinstance(
            back := self._policy.gates(pre_push, "pre-push"), SendBack
        ):
            return back
        return self._policy.push(await ctx.gitops.push(PushRequested(**attempt.where())))

    async def check_gates(
        self, phase: GatePhase, worktree: str, base: str | None, commit: str | None
    ) -> GateDecision:
        """Run the task's gates on ``worktree`` (at ``commit`` when known) and record them."""
        ctx, attempt = self._ctx, self._attempt
        request = attempt.request
        decision = await ctx.gates.check(
            GateCheckRequested(
                agent_id=attempt.agent_id,
                task_id=attempt.task_id,
                worktree=worktree,
                phase=phase,
                profile=request.gate_profile or ctx.quality.default_gate_profile,
                yolo=ctx.quality.yolo_mode,
                base=base,
                work_items=tuple(request.context.work_items),
                environment_image=self._environment.image,
                environment_env=self._environment.env,
            )
        )
        await self._record_gates(decision, phase, commit)
        await self._meter.gate_calls(decision)  # the reviewer's calls are the task's spend
        return decision

    async def _record_gates(
        self, decision: GateDecision, phase: GatePhase, commit: str | None
    ) -> None:
        # gate output is a command's output: mask secrets before it is stored and shown
        results = [
            r.model_copy(update={"excerpt": tools.redact(r.excerpt)}).model_dump(mode="json")
            for r in decision.results
        ]
        tracker = self._attempt.tracker
        await tracker.update(AgentPatch(gates=results))
        detail: dict[str, Any] = {
            "approved": decision.approved,
            "yolo": decision.yolo,
            "phase": phase,
            "results": results,
        }
        if commit is not None:
            detail["commit"] = commit
        await tracker.record("gate", detail)

    async def _gates_not_run(self) -> None:
        """Say on the agent's status that this finish ran no gates: nothing to check."""
        await self._attempt.tracker.record(
            "progress", {"step": "finish", "gates": "not run: nothing changed"}
        )

    async def no_git(self, what: str) -> None:
        """Say (log and an agent event) that the sandbox has no git, and what that skipped."""
        log.warning("no git in the sandbox: %s", what, extra=self._attempt.log)
        await self._attempt.tracker.record(
            "progress", {"step": "git_unavailable", "detail": f"no git in the sandbox: {what}"}
        )
