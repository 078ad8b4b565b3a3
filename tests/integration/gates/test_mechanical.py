"""Mechanical gates on a real sample repository, real git and real tool processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shared.messages.gates import GateCheckRequested, GateDecision, GateResult
from tests.integration.gates.conftest import MakeChecker
from tests.integration.gates.samples import (
    DEFECTS,
    FAST,
    PY,
    apply_defect,
    build_plain,
    build_sample,
    git,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def ask(worktree: Path, profile: str = "strict", **extra: object) -> GateCheckRequested:
    return GateCheckRequested(
        agent_id="a1", task_id="t1", worktree=str(worktree), profile=profile, **extra
    )


def by_name(decision: GateDecision) -> dict[str, GateResult]:
    return {r.name: r for r in decision.results}


async def test_clean_sample_passes_every_mechanical_gate_under_strict(
    make_checker: MakeChecker, sample: Path
) -> None:
    decision = await make_checker().decide(ask(sample))
    results = by_name(decision)
    assert decision.approved, decision
    assert [r.name for r in decision.results] == [
        "typecheck", "lint", "tests", "coverage", "build", "ai-review",
    ]  # fmt: skip
    for name in ("typecheck", "lint", "tests", "coverage", "build"):
        assert results[name].status == "passed", results[name]
        assert results[name].duration_ms > 0
        assert results[name].command
    assert results["coverage"].figure == 100.0
    review = results["ai-review"]
    assert review.status == "skipped"  # turned off by the sample's gates.toml
    assert review.excerpt == "skipped: turned off in .mosaic/gates.toml"
    assert decision.summary.endswith("; skipped (turned off in .mosaic/gates.toml): ai-review")
    # the gates left nothing behind in the worktree
    assert git(sample, "status", "--porcelain", "--ignored") == ""


@pytest.mark.parametrize("defect", sorted(DEFECTS))
async def test_each_defect_is_rejected_by_its_gate_with_a_useful_excerpt(
    make_checker: MakeChecker, sample: Path, defect: str
) -> None:
    apply_defect(sample, defect)
    decision = await make_checker().decide(ask(sample))
    results = by_name(decision)
    gate = DEFECTS[defect]
    assert not decision.approved
    assert decision.error is None
    assert results[gate].status == "failed", results
    assert f"{gate} failed" in decision.summary or gate in decision.summary
    excerpt = results[gate].excerpt
    expected = {
        "type": "Incompatible return value type",
        "lint": "F401",
        "failing-test": "two and two make four",
        "low-coverage": "below the threshold of 85%",
        "build": "calc/VERSION is not a release number",
    }[defect]
    assert expected in excerpt, excerpt
    if defect == "low-coverage":
        figure = results["coverage"].figure
        assert figure is not None
        assert figure < 85
        assert results["tests"].status == "passed"
    # each defect is caught by its gate, not blamed on unrelated ones
    others = {"typecheck", "lint", "tests", "build"} - {gate}
    if defect != "low-coverage":
        others.discard("coverage")
    assert all(results[o].status == "passed" for o in others), results


async def test_a_lint_only_change_fails_strict_and_standard_but_passes_minimal(
    make_checker: MakeChecker, sample: Path
) -> None:
    apply_defect(sample, "lint")
    checker = make_checker()
    assert not (await checker.decide(ask(sample, "strict"))).approved
    standard = await checker.decide(ask(sample, "standard"))
    assert not standard.approved
    assert [r.name for r in standard.results] == ["tests", "lint"]
    minimal = await checker.decide(ask(sample, "minimal"))
    assert minimal.approved, minimal
    assert [(r.name, r.status) for r in minimal.results] == [("tests", "passed")]


async def test_gates_come_from_the_base_not_from_the_change(
    make_checker: MakeChecker, sample: Path
) -> None:
    apply_defect(sample, "failing-test")
    (sample / ".mosaic/gates.toml").write_text('[gates]\ntests = "true"\n')
    decision = await make_checker().decide(ask(sample, "minimal"))
    assert not decision.approved
    assert by_name(decision)["tests"].status == "failed"


async def test_detection_fills_the_gates_the_file_does_not_name(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    toml = f'[gates]\ntests = "{FAST} {PY} -m pytest -q tests"\n'
    work, _ = build_sample(tmp_path, gates=toml, remote=False, name="detect")
    decision = await make_checker(GATES_OWN_TOOLS=True).decide(ask(work, "standard"))
    results = by_name(decision)
    assert results["lint"].command == "python3 -m ruff check ."  # detected: a Python project
    assert results["lint"].status == "passed", results["lint"]
    assert results["tests"].status == "passed", results["tests"]
    assert decision.approved, decision
    host_ruff = "python3 -c 'import ruff' || command -v ruff"
    if subprocess.run(["sh", "-c", host_ruff], capture_output=True).returncode == 0:
        pytest.skip("ruff is installed for the host's python3: it cannot be missing here")
    # without Mosaic's own tools on PATH, the missing tool fails the gate: not checked
    bare = make_checker(GATES_OWN_TOOLS=False, GATES_TOOL_PATH="")
    decision = await bare.decide(ask(work, "standard"))
    lint = by_name(decision)["lint"]
    assert not decision.approved
    assert lint.status == "failed"
    assert lint.excerpt.startswith("not checked: ruff is not installed where the gates run")
    assert "(none sandbox)" in lint.excerpt
    assert decision.summary == "rejected: lint failed (not checked: lint)"


async def test_nothing_detected_fails_every_gate_as_not_checked(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    empty = build_plain(tmp_path, name="empty", only={"notes.txt": "no project here\n"})
    decision = await make_checker().decide(ask(empty, "standard"))
    assert not decision.approved
    assert decision.error is None
    assert [(r.name, r.status) for r in decision.results] == [
        ("tests", "failed"),
        ("lint", "failed"),
    ]
    for result in decision.results:
        assert result.excerpt.startswith("not checked: nothing detected"), result.excerpt
        assert "no Python (*.py) or Node (package.json) project" in result.excerpt
    assert "NOTHING WAS CHECKED" not in decision.summary
    assert decision.summary == "rejected: tests, lint failed (not checked: tests, lint)"


async def test_turned_off_and_timed_out_gates(make_checker: MakeChecker, tmp_path: Path) -> None:
    toml = 'timeout = 1\n[gates]\nlint = false\ntests = "sleep 30"\n'
    work, _ = build_sample(tmp_path, gates=toml, remote=False, name="slow")
    decision = await make_checker().decide(ask(work, "standard"))
    results = by_name(decision)
    assert results["lint"].status == "skipped"
    assert results["lint"].excerpt == "skipped: turned off in .mosaic/gates.toml"
    assert results["tests"].status == "failed"
    assert "timed out after 1s" in results["tests"].excerpt
    assert results["tests"].duration_ms < 5000
    assert decision.summary == (
        "rejected: tests failed; skipped (turned off in .mosaic/gates.toml): lint"
    )


async def test_every_gate_turned_off_is_an_error_not_an_approval(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    toml = "[gates]\nlint = false\ntests = false\n"
    work, _ = build_sample(tmp_path, gates=toml, remote=False, name="off")
    decision = await make_checker().decide(ask(work, "standard"))
    assert not decision.approved
    assert decision.error is not None
    assert decision.error.code == "bad_gates_config"
    assert not decision.error.retryable
    assert "nothing would be checked" in decision.error.message
    # minimal needs only tests: turned off there too, still refused
    assert (await make_checker().decide(ask(work, "minimal"))).error is not None


async def test_bad_requests_become_errors_not_crashes(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    checker = make_checker()
    outside = await checker.decide(ask(Path("/etc")))
    assert outside.error is not None
    assert outside.error.code == "bad_worktree"
    assert "outside the allowed root" in outside.error.message
    missing = await checker.decide(ask(tmp_path / "nope"))
    assert missing.error is not None
    assert "does not exist" in missing.error.message
    work, _ = build_sample(tmp_path, gates="[gates]\nlint = 3\n", remote=False, name="bad")
    broken = await checker.decide(ask(work, "standard"))
    assert broken.error is not None
    assert broken.error.code == "bad_gates_config"
    assert "gates.lint" in broken.error.message
