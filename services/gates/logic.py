"""A gate check from request to decision: profile, YOLO, mechanical gates, the reviewer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.gates.config import RepoGates, load_gates
from services.gates.errors import AuditUnavailableError, GatesError
from services.gates.mechanical import run_gate, skipped
from services.gates.profiles import AI_REVIEW, gates_of
from services.gates.repo import RepoView, check_worktree, open_view
from services.gates.reviewer import Reviewer
from services.gates.runner import CommandRunner
from services.gates.settings import GatesSettings
from shared.audit import KIND_GATE_SKIPPED
from shared.messages.audit import AuditEntry
from shared.messages.base import Failure
from shared.messages.gates import GateCheckRequested, GateDecision, GateResult

log = logging.getLogger(__name__)

Audit = Callable[[AuditEntry], Awaitable[object]]
YOLO_REASON = "YOLO mode: quality gates are skipped (audited); the secret scan still runs"


class GateChecker:
    """Decides gate checks with one runner, one reviewer and the audit trail."""

    def __init__(
        self,
        settings: GatesSettings,
        runner: CommandRunner,
        reviewer: Reviewer,
        audit: Audit,
        worktree_root: Path | None,
        actor: str = "gates",
    ) -> None:
        self.settings = settings
        self.runner = runner
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
        except GatesError as exc:
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

    async def _check(
        self, request: GateCheckRequested, names: tuple[str, ...], extra: dict[str, str]
    ) -> GateDecision:
        started = time.monotonic()
        s = self.settings
        worktree = await asyncio.to_thread(check_worktree, request.worktree, self._root)
        view = await open_view(worktree, request.base)
        mechanical = [n for n in names if n != AI_REVIEW]
        repo = (
            await asyncio.to_thread(
                load_gates,
                view,
                default_timeout=s.gates_gate_timeout_s,
                coverage_threshold=s.gates_coverage_threshold,
            )
            if mechanical
            else RepoGates()
        )
        review = (
            asyncio.create_task(self._review(view, request, extra)) if AI_REVIEW in names else None
        )
        found: dict[str, GateResult] = {}
        try:
            for name in mechanical:
                found[name] = await self._mechanical(name, repo, worktree, started)
            if review is not None:
                found[AI_REVIEW] = await review
        finally:
            if review is not None and not review.done():
                review.cancel()
        results = [found[name] for name in names]
        return self._conclude(request, results, extra, started)

    async def _mechanical(
        self, name: str, repo: RepoGates, worktree: Path, started: float
    ) -> GateResult:
        s = self.settings
        gate = repo.commands.get(name)
        if gate is None:
            return skipped(name, repo.missing.get(name, "no command"))
        left = s.gates_check_budget_s - (time.monotonic() - started)
        if left <= 1:
            return GateResult(
                name=name,
                status="failed",
                command=gate.command,
                excerpt=f"not run: the check's time budget of {s.gates_check_budget_s:g}s is spent",
            )
        return await run_gate(
            gate,
            self.runner,
            worktree,
            timeout=left,
            excerpt_chars=s.gates_excerpt_chars,
            max_output=s.gates_max_output,
            coverage_threshold=repo.coverage_threshold,
        )

    async def _review(
        self, view: RepoView, request: GateCheckRequested, extra: dict[str, str]
    ) -> GateResult:
        if not self.reviewer.available:
            return skipped(AI_REVIEW, self.reviewer.unavailable_reason())
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
        skipped_names = [r.name for r in results if r.status == "skipped"]
        approved = not failed
        if not passed and not failed:
            summary = (
                f"NOTHING WAS CHECKED: every gate of profile {request.profile!r} was skipped "
                f"({', '.join(skipped_names)}); see each gate's reason"
            )
            results.append(GateResult(name="all-skipped", status="skipped", excerpt=summary))
        elif failed:
            summary = f"rejected: {', '.join(failed)} failed"
        else:
            summary = f"approved: {', '.join(passed)} passed"
        if skipped_names and (passed or failed):
            summary += f"; skipped: {', '.join(skipped_names)}"
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
