"""Gates fail closed, on a repository of plain ``.py`` files (no pyproject, no gates.toml).

Real git repositories and real tool processes, in ``none`` sandboxes with Mosaic's own
tools on ``PATH`` (other backends: test_sandboxes.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.gates.runner import SelectedSandboxes
from shared.messages.gates import GateCheckRequested, GateDecision, GateResult
from shared.sandbox.settings import SandboxSettings
from tests.integration.gates.conftest import NO_SUCH_IMAGE, MakeChecker
from tests.integration.gates.samples import BROKEN_PERIMETER, build_plain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def ask(worktree: Path, profile: str = "standard") -> GateCheckRequested:
    return GateCheckRequested(
        agent_id="fc1", task_id="t-fc", worktree=str(worktree), profile=profile
    )


def by_name(decision: GateDecision) -> dict[str, GateResult]:
    return {r.name: r for r in decision.results}


async def test_a_failing_test_in_plain_python_files_is_rejected_under_standard(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    work = build_plain(tmp_path)
    (work / "shapes.py").write_text(BROKEN_PERIMETER)
    decision = await make_checker().decide(ask(work))
    results = by_name(decision)
    assert not decision.approved
    assert decision.error is None
    tests = results["tests"]
    assert tests.status == "failed"
    assert tests.command == "python3 -m pytest -q"  # detected from the plain files
    assert "test_perimeter" in tests.excerpt
    assert "1 failed, 1 passed" in tests.excerpt
    assert results["lint"].status == "passed"
    assert decision.summary == "rejected: tests failed"


async def test_the_same_repository_passing_is_approved(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    work = build_plain(tmp_path)
    decision = await make_checker().decide(ask(work))
    assert decision.approved, decision
    assert [(r.name, r.status) for r in decision.results] == [
        ("tests", "passed"),
        ("lint", "passed"),
    ]
    assert "2 passed" in by_name(decision)["tests"].excerpt
    assert decision.summary == "approved: tests, lint passed"


async def test_a_gate_whose_tool_is_missing_fails_as_not_checked(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    toml = '[gates]\nlint = "no-such-linter --strict ."\n'
    work = build_plain(tmp_path, files={".mosaic/gates.toml": toml})
    decision = await make_checker().decide(ask(work))
    lint = by_name(decision)["lint"]
    assert not decision.approved
    assert lint.status == "failed"
    assert lint.command == "no-such-linter --strict ."
    assert lint.excerpt == (
        "not checked: no-such-linter is not installed where the gates run (none sandbox)"
    )
    assert by_name(decision)["tests"].status == "passed"
    assert decision.summary == "rejected: lint failed (not checked: lint)"


async def test_a_python_repository_without_tests_fails_the_tests_gate(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    script = build_plain(tmp_path, name="script", only={"tool.py": '"""A script."""\n'})
    decision = await make_checker().decide(ask(script))
    tests = by_name(decision)["tests"]
    assert not decision.approved
    assert tests.status == "failed"
    assert tests.excerpt.startswith("not checked: no tests found")
    assert by_name(decision)["lint"].status == "passed"
    # a test file the change deletes is still at the base: the gate runs (and fails)
    work = build_plain(tmp_path, name="untested")
    (work / "test_shapes.py").unlink()
    removed = by_name(await make_checker().decide(ask(work)))["tests"]
    assert removed.command == "python3 -m pytest -q"
    assert removed.status == "failed"
    assert "no tests ran" in removed.excerpt


async def test_lint_turned_off_is_skipped_and_says_so(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    work = build_plain(tmp_path, files={".mosaic/gates.toml": "[gates]\nlint = false\n"})
    (work / "shapes.py").write_text("import os\n" + (work / "shapes.py").read_text())  # F401
    decision = await make_checker().decide(ask(work))
    lint = by_name(decision)["lint"]
    assert decision.approved, decision
    assert lint.status == "skipped"
    assert lint.excerpt == "skipped: turned off in .mosaic/gates.toml"
    assert decision.summary == (
        "approved: tests passed; skipped (turned off in .mosaic/gates.toml): lint"
    )


async def test_turning_a_gate_off_in_the_change_does_not_count(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    work = build_plain(tmp_path)
    (work / ".mosaic").mkdir()
    (work / ".mosaic/gates.toml").write_text("[gates]\nlint = false\ntests = false\n")
    (work / "shapes.py").write_text(BROKEN_PERIMETER)
    decision = await make_checker().decide(ask(work))
    assert not decision.approved
    assert by_name(decision)["tests"].status == "failed"
    assert by_name(decision)["lint"].status == "passed"


async def test_no_sandbox_fails_every_check_closed_with_the_reason(
    make_checker: MakeChecker, tmp_path: Path, no_image_sandbox: SandboxSettings
) -> None:
    """A sandbox that cannot be made here (docker with an image that does not exist)."""
    work = build_plain(tmp_path)
    checker = make_checker(sandboxes=SelectedSandboxes(no_image_sandbox))
    decision = await checker.decide(ask(work))
    assert not decision.approved
    assert decision.error is not None
    assert NO_SUCH_IMAGE in decision.error.message
    assert decision.summary.startswith("gate check could not be completed: ")
    assert decision.results == ()


NODE_TEST = (
    "const assert = require('assert');\n"
    "const { double } = require('./lib');\n"
    "assert.strictEqual(double(2), 4, 'double_of_two');\n"
    "console.log('node tests ok');\n"
)


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed on this host")
async def test_a_node_project_runs_npm_test_and_fails_lint_without_a_script(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    package = '{"name": "n", "version": "1.0.0", "scripts": {"test": "node test.js"}}\n'
    work = build_plain(
        tmp_path,
        name="node",
        only={
            "package.json": package,
            "lib.js": "exports.double = (x) => x * 2;\n",
            "test.js": NODE_TEST,
        },
    )
    decision = await make_checker().decide(ask(work))
    results = by_name(decision)
    assert results["tests"].command == "npm test --silent"
    assert results["tests"].status == "passed", results["tests"]
    assert "node tests ok" in results["tests"].excerpt
    assert results["lint"].status == "failed"
    assert results["lint"].excerpt == (
        "not checked: package.json has no lint script (and no eslint devDependency)"
    )
    assert not decision.approved
    (work / "lib.js").write_text("exports.double = (x) => x + 1;\n")
    broken = by_name(await make_checker().decide(ask(work, "minimal")))["tests"]
    assert broken.status == "failed"
    assert "double_of_two" in broken.excerpt
