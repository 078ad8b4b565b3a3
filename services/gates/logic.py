"""A gate check from request to decision: profile, YOLO, mechanical gates, the reviewer.

Fail closed everywhere: no sandbox, a gate that cannot run, a reviewer that cannot
answer, or a check where every gate is turned off never ends in an approval.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.gates.config import CONFIG_PATH, RepoGates, load_gates
from services.gates.errors import AuditUnavailableError, GateConfigError, GatesError
from services.gates.mechanical import TURNED_OFF, not_checked, run_gate, skipped
from services.gates.profiles import gates_of
from services.gates.repo import RepoView, check_worktree, open_view
from services.gates.reviewer import Reviewer
from services.gates.runner import (
    GATE_LIMITS,
    Environment,
    GateRunner,
    GateTarget,
    SandboxSource,
)
from services.gates.settings import GatesSettings
from shared.agentrepo import shared_objects_of
from shared.audit import KIND_GATE_SKIPPED
from shared.gatesfile import AI_REVIEW
from shared.messages.audit import AuditEntry
from shared.messages.base import Failure
from shared.messages.gates import GateCheckRequested, GateDecision, GateResult
from shared.sandbox.base import SandboxError, SandboxFactory

log = logging.getLogger(__name__)

Audit = Callable[[AuditEntry], Awaitable[object]]
YOLO_REASON = "YOLO mode: quality gates are skipped (audited); the secret scan still runs"


class GateChecker:
    """Decides gate checks in sandboxes from one source, with one reviewer and the audit trail."""

    def __init__(
        self,
        settings: GatesSettings,
        sandboxes: SandboxSource,
        reviewer: Reviewer,
        audit: Audit,
        worktree_root: Path | None,
        actor: str = "gates",
    ) -> None:
        self.settings = settings
        self.sandboxes = sandboxes
        self.reviewer = reviewer
        self._audit = audit
        self._root = worktree_root
        self._actor = actor

    async def decide(self, request: GateCheckRequested) -> GateDecision:
        """The decision; errors become ``GateDecision.error`` (never an exception)."""
        extra = {"agent_id": request.agent_id, "task_id": request.task_id}
        try:
            names = gates_of(request.profile)
            if request.yolo:
                return await self._yolo(request, names)
            return await self._check(request, names, extra)
        except (GatesError, SandboxError) as exc:
            log.warning("gate check failed: %s", exc.message, extra=extra)
            return GateDecision(
                approved=False,
                yolo=request.yolo,
                error=Failure(code=exc.code, message=exc.message, retryable=exc.retryable),
                summary=f"gate check could not be completed: {exc.message}",
            )

    async def _yolo(self, request: GateCheckRequested, names: tuple[str, ...]) -> GateDecision:
        results = tuple(skipped(name, YOLO_REASON) for name in names)
        for name in names:
            entry = AuditEntry(
                kind=KIND_GATE_SKIPPED,
                actor=self._actor,
                reason="YOLO mode",
                agent_id=request.agent_id,
                task_id=request.task_id,
                detail={
                    "gate": name,
                    "profile": request.profile,
                    "phase": request.phase,
                    "worktree": request.worktree,
                },
            )
            try:
                await self._audit(entry)
            except Exception as exc:
                raise AuditUnavailableError(
                    f"YOLO skips must be audited and the audit trail is unavailable: {exc}"
                ) from exc
        log.warning(
            "YOLO mode: %d quality gates skipped and audited (%s)",
            len(names),
            ", ".join(names),
            extra={"agent_id": request.agent_id, "task_id": request.task_id},
        )
        summary = f"YOLO mode: every quality gate of profile {request.profile!r} was skipped"
        return GateDecision(approved=True, results=results, yolo=True, summary=summary)

    def _runner(self, factory: SandboxFactory) -> GateRunner:
        s = self.settings
        limits = dataclasses.replace(
            GATE_LIMITS, memory_mb=s.gates_memory_mb, cpus=s.gates_cpus, pids=s.gates_pids
        )
        return GateRunner(
            factory,
            limits,
            tool_path=s.gates_tool_path,
            own_tools=s.gates_own_tools,
        )

    async def _check(
        self, request: GateCheckRequested, names: tuple[str, ...], extra: dict[str, str]
    ) -> GateDecision:
        started = time.monotonic()
        worktree = await asyncio.to_thread(check_worktree, request.worktree, self._root)
        view = await open_view(worktree, request.base)
        try:
            return await self._check_view(request, names, extra, started, worktree, view)
        finally:
            view.close()

    async def _check_view(
        self,
        request: GateCheckRequested,
        names: tuple[str, ...],
        extra: dict[str, str],
        started: float,
        worktree: Path,
        view: RepoView,
    ) -> GateDecision:
        s = self.settings
        repo = await asyncio.to_thread(
            load_gates,
            view,
            names,
            default_timeout=s.gates_gate_timeout_s,
            coverage_threshold=s.gates_coverage_threshold,
        )
        if all(name in repo.off for name in names):
            raise GateConfigError(
                f"every gate of profile {request.profile!r} ({', '.join(names)}) is turned off "
                f"in {CONFIG_PATH}: nothing would be checked, and that is never an approval",
                retryable=False,
            )
        mechanical = [n for n in names if n != AI_REVIEW]
        runner: GateRunner | None = None
        if any(n in repo.commands for n in mechanical):
            # no sandbox, no check: the reason goes back as the decision's error
            runner = self._runner(await self.sandboxes.factory())
        target = GateTarget(
            agent_id=request.agent_id,
            task_id=request.task_id,
            worktree=worktree,
            shared_objects=shared_objects_of(worktree),
            environment=Environment(
                image=request.environment_image,
                env=tuple(sorted(request.environment_env.items())),
            ),
        )
        review = (
            asyncio.create_task(self._review(view, request, extra))
            if AI_REVIEW in names and AI_REVIEW not in repo.off
            else None
        )
        found: dict[str, GateResult] = {}
        try:
            for name in mechanical:
                found[name] = await self._mechanical(name, repo, runner, target, started)
            if review is not None:
                found[AI_REVIEW] = await review
            elif AI_REVIEW in names:
                found[AI_REVIEW] = skipped(AI_REVIEW, TURNED_OFF)
        finally:
            if review is not None and not review.done():
                review.cancel()
        results = [found[name] for name in names]
        return self._conclude(request, results, extra, started)

    async def _mechanical(
        self,
        name: str,
        repo: RepoGates,
        runner: GateRunner | None,
        target: GateTarget,
        started: float,
    ) -> GateResult:
        s = self.settings
        if name in repo.off:
            return skipped(name, TURNED_OFF)
        gate = repo.commands.get(name)
        if gate is None or runner is None:
            return not_checked(name, repo.missing.get(name, f"no {name} command"))
        left = s.gates_check_budget_s - (time.monotonic() - started)
        if left <= 1:
            return not_checked(
                name,
                f"the check's time budget of {s.gates_check_budget_s:g}s is spent",
                gate.command,
            )
        return await run_gate(
            gate,
            runner,
            target,
            timeout=left,
            excerpt_chars=s.gates_excerpt_chars,
            max_output=s.gates_max_output,
            coverage_threshold=repo.coverage_threshold,
        )

    async def _review(
        self, view: RepoView, request: GateCheckRequested, extra: dict[str, str]
    ) -> GateResult:
        if not self.reviewer.available:
            return not_checked(AI_REVIEW, self.reviewer.unavailable_reason())
        diff, truncated = await asyncio.to_thread(view.diff, self.reviewer.max_diff_chars)
        return await self.reviewer.review(diff, truncated, request.work_items, extra)

    def _conclude(
        self,
        request: GateCheckRequested,
        results: list[GateResult],
        extra: dict[str, str],
        started: float,
    ) -> GateDecision:
        failed = [r.name for r in results if r.status == "failed"]
        passed = [r.name for r in results if r.status == "passed"]
        off = [r.name for r in results if r.status == "skipped"]
        # a check that ran nothing is refused before it starts, so passed is never empty here
        approved = not failed and bool(passed)
        if failed:
            summary = f"rejected: {', '.join(failed)} failed"
            unchecked = [r.name for r in results if r.excerpt.startswith("not checked")]
            if unchecked:
                summary += f" (not checked: {', '.join(unchecked)})"
        elif passed:
            summary = f"approved: {', '.join(passed)} passed"
        else:
            summary = "rejected: nothing was checked"
        if off:
            summary += f"; skipped ({TURNED_OFF}): {', '.join(off)}"
        log.info(
            "gates %s (%s, %s) in %.1fs: %s",
            "approved" if approved else "rejected",
            request.profile,
            request.phase,
            time.monotonic() - started,
            summary,
            extra=extra,
        )
        return GateDecision(approved=approved, results=tuple(results), summary=summary)
