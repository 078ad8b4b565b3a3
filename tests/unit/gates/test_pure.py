"""Pure logic of the gates: config parsing, excerpts, coverage figures, review answers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.gates.config import first_tool, parse_gates_file
from services.gates.errors import GateConfigError
from services.gates.mechanical import coverage_figure, trim
from services.gates.profiles import gates_of
from services.gates.reviewer import ReviewAnswer, parse_answer, review_prompt
from services.gates.runner import TOOL_MISSING_MARK, guarded
from shared.audit import audit_subject
from shared.messages.audit import AuditEntry

pytestmark = pytest.mark.unit


def test_profiles() -> None:
    assert gates_of("strict") == ("typecheck", "lint", "tests", "coverage", "build", "ai-review")
    assert gates_of("standard") == ("tests", "lint")
    assert gates_of("minimal") == ("tests",)
    with pytest.raises(ValueError, match="unknown gate profile"):
        gates_of("lax")


def test_gates_file_accepts_strings_tables_and_false() -> None:
    parsed = parse_gates_file(
        'timeout = 30\ndetect = false\n[gates]\nlint = "ruff check ."\ntypecheck = false\n'
        '[gates.coverage]\ncommand = "cov"\nthreshold = 90\npattern = "T (\\\\d+)%"\n'
    )
    assert parsed.timeout == 30
    assert not parsed.detect
    assert parsed.gates["typecheck"] is False
    lint = parsed.gates["lint"]
    assert lint is not False
    assert lint.command == "ruff check ."
    coverage = parsed.gates["coverage"]
    assert coverage is not False
    assert coverage.threshold == 90


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gates\n", "not valid TOML"),
        ('[gates]\nlintt = "x"\n', "gates.lintt"),
        ("[gates]\nlint = 3\n", "gates.lint"),
        ('[gates.coverage]\ncommand = "c"\nthreshold = 150\n', "threshold"),
        ('[gates.coverage]\ncommand = "c"\npattern = "no group"\n', "pattern"),
        ("surprise = 1\n", "surprise"),
    ],
)
def test_bad_gates_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(GateConfigError, match=message):
        parse_gates_file(text)


@pytest.mark.parametrize(
    ("command", "tool"),
    [
        ("ruff check .", "ruff"),
        ("FOO=1 BAR=x /venv/bin/pytest -q", "/venv/bin/pytest"),
        ("./node_modules/.bin/tsc --noEmit", "./node_modules/.bin/tsc"),
        ("", ""),
    ],
)
def test_first_tool(command: str, tool: str) -> None:
    assert first_tool(command) == tool


def test_guard_quotes_the_tool() -> None:
    script = guarded("x", "it's")
    assert "'it'\\''s'" in script
    assert TOOL_MISSING_MARK in script
    assert guarded("x", "") == "x"


def test_trim_keeps_head_and_tail_and_drops_colour() -> None:
    text = "\x1b[31mFIRST\x1b[0m\n" + "middle\n" * 2000 + "LAST"
    out = trim(text, 300)
    assert out.startswith("FIRST")
    assert out.endswith("LAST")
    assert "characters cut" in out
    assert "\x1b" not in out
    assert len(out) < 400
    assert trim("short", 300) == "short"


@pytest.mark.parametrize(
    ("output", "figure"),
    [
        ("Name Stmts Miss Cover\nTOTAL 40 6 85%\n", 85.0),
        ("TOTAL   40   6   84.62%\n", 84.62),
        ("All files |   91.3 |  80 | 100 | 91.3 |\n", 91.3),
        ("Statements   : 77.5% ( 31/40 )\n", 77.5),
        ("nothing here", None),
    ],
)
def test_coverage_figures(output: str, figure: float | None) -> None:
    assert coverage_figure(output, None) == figure


def test_coverage_figure_with_a_custom_pattern() -> None:
    assert coverage_figure("covered: 66 of 100 (66.0%)", r"\((\d+\.\d)%\)") == 66.0


def block(kind: str, **fields: object) -> SimpleNamespace:
    return SimpleNamespace(type=kind, **fields)


def test_review_answers() -> None:
    good = parse_answer([block("tool_use", name="submit_review", input={
        "confidence": 0.92, "approve": True, "findings": [{"severity": "info", "message": "ok"}],
    })])  # fmt: skip
    assert isinstance(good, ReviewAnswer)
    assert good.confidence == 0.92
    text_only = parse_answer([block("text", text="looks fine")])
    assert isinstance(text_only, str)
    assert "did not call submit_review" in text_only
    bad = parse_answer([block("tool_use", name="submit_review", input={"confidence": -1})])
    assert isinstance(bad, str)
    assert "malformed" in bad


def test_review_prompt_fences_the_data() -> None:
    prompt = review_prompt("+x = 1\n", True, ["Do a thing"])
    assert "<work_items>\n- Do a thing\n</work_items>" in prompt
    assert "<diff>\n+x = 1\n\n</diff>" in prompt
    assert "cut to fit" in prompt
    assert "none given" in review_prompt("", False, [])


def test_audit_subjects_and_entries() -> None:
    assert audit_subject("gate_skipped") == "mosaic.audit.gate_skipped"
    with pytest.raises(ValueError, match="one subject token"):
        audit_subject("a.b")
    entry = AuditEntry(kind="gate_skipped", actor="gates-1", agent_id="a")
    assert AuditEntry.from_bytes(entry.to_bytes()) == entry
    assert "agentId" in entry.model_dump(mode="json")
