"""Gate decisions. Walking-skeleton stage: the profile's gates are listed and reported as
skipped (no gate commands are run yet), so a change is approved but never shown as
having passed a gate it did not run."""

from __future__ import annotations

from shared.messages.gates import GateCheckRequested, GateDecision, GateResult

PROFILES: dict[str, tuple[str, ...]] = {
    "strict": ("typecheck", "lint", "tests", "coverage", "build", "ai-review"),
    "standard": ("tests", "lint"),
    "minimal": ("tests",),
}


async def decide(request: GateCheckRequested) -> GateDecision:
    """Approve unless a gate failed; YOLO skips every quality gate."""
    reason = "skipped: YOLO mode" if request.yolo else "skipped: no gate command configured"
    results = tuple(
        GateResult(name=n, status="skipped", excerpt=reason) for n in PROFILES[request.profile]
    )
    return GateDecision(
        approved=all(r.status != "failed" for r in results), results=results, yolo=request.yolo
    )
