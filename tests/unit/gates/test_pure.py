"""Pure logic of the gates: config parsing, excerpts, coverage figures, review answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from services.gates.config import first_tool, parse_gates_file
from services.gates.errors import GateConfigError
from services.gates.mechanical import coverage_figure, trim
from services.gates.profiles import gates_of
from services.gates.reviewer import ReviewAnswer, parse_answer, review_prompt
from services.gates.runner import (
    TOOL_MISSING_EXIT,
    TOOL_MISSING_MARK,
    guarded,
    host_path_prefix,
    preamble,
    split_tool,
    tool_label,
)
from services.gates.settings import GatesSettings
from shared.audit import audit_subject
from shared.messages.audit import AuditEntry
from shared.messages.gates import GateCheckRequested

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
        ("python3 -m mypy --strict .", "python3 -m mypy"),
        ("PYTHONPATH=. /venv/bin/python -m pytest -q", "/venv/bin/python -m pytest"),
        ("node -m x", "node"),
        ("", ""),
    ],
)
def test_first_tool(command: str, tool: str) -> None:
    assert first_tool(command) == tool


def sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)


def test_guard_runs_the_command_only_when_its_tool_is_there() -> None:
    ran = sh(guarded("echo RAN", "sh"))
    assert (ran.returncode, ran.stdout) == (0, "RAN\n")
    missing = sh(guarded("echo RAN", "no-such-tool-'quoted' $(touch /tmp/x)"))
    assert missing.returncode == TOOL_MISSING_EXIT
    assert missing.stdout == f"{TOOL_MISSING_MARK}no-such-tool-'quoted' $(touch /tmp/x)\n"
    assert guarded("x", "") == "x"


def test_a_python_module_tool_needs_the_module_importable() -> None:
    python = Path(sys.executable).name
    ok = sh(
        f"PATH={Path(sys.executable).parent}:$PATH\n" + guarded("echo RAN", f"{python} -m json")
    )
    assert ok.stdout == "RAN\n"
    gone = sh(
        f"PATH={Path(sys.executable).parent}:$PATH\n"
        + guarded("echo RAN", f"{python} -m no_such_module_here")
    )
    assert gone.returncode == TOOL_MISSING_EXIT
    assert gone.stdout == f"{TOOL_MISSING_MARK}no_such_module_here\n"
    assert split_tool("python3 -m ruff") == ("python3", "ruff")
    assert tool_label("python3 -m ruff") == "ruff"
    assert tool_label("npm") == "npm"


def test_the_preamble_sends_caches_to_a_private_dir_and_sets_path(tmp_path: Path) -> None:
    script = preamble("/opt/tools") + '\necho "$HOME|$COVERAGE_FILE|$PYTEST_ADDOPTS|$PATH"'
    done = subprocess.run(
        ["/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    home, coverage, addopts, path = done.stdout.strip().split("|")
    assert Path(home).parent == tmp_path
    assert Path(home).name.startswith("mosaic-gate.")
    assert coverage == f"{home}/.coverage"
    assert addopts == "-p no:cacheprovider"
    assert path == "/opt/tools:/usr/bin:/bin"


def test_host_tools_reach_only_the_backends_that_see_the_host() -> None:
    own = str(Path(sys.executable).parent)
    assert host_path_prefix("none", "/a:/b", own_tools=True) == f"/a:/b:{own}"
    assert host_path_prefix("none", "", own_tools=False) == ""
    assert host_path_prefix("bwrap", "/a", own_tools=True) == "/a"  # host tools = environment
    assert host_path_prefix("docker", "/a", own_tools=True) == ""  # the image is


@pytest.mark.parametrize("name", ["GATES_SANDBOX", "GATES_IMAGE"])
def test_the_gates_own_sandbox_settings_are_gone_and_refused(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "local")
    with pytest.raises(ValidationError, match=f"{name} no longer exists"):
        GatesSettings()
    monkeypatch.delenv(name)
    assert GatesSettings().gates_concurrency >= 1


def test_ai_review_can_only_be_turned_off() -> None:
    assert parse_gates_file("[gates]\nai-review = false\n").gates["ai-review"] is False
    with pytest.raises(GateConfigError, match="ai-review takes no command"):
        parse_gates_file('[gates]\nai-review = "true"\n')


def test_requests_carry_the_environment_the_agent_ran_in() -> None:
    asked = GateCheckRequested(
        agent_id="a",
        task_id="t",
        worktree="/w",
        environment_image="mosaic-env/x:1",
        environment_env={"PIP_NO_INPUT": "1"},
    )
    wire = asked.model_dump(mode="json")
    assert wire["environmentImage"] == "mosaic-env/x:1"
    assert wire["environmentEnv"] == {"PIP_NO_INPUT": "1"}
    assert GateCheckRequested.model_validate(wire) == asked
    old = GateCheckRequested.model_validate({"agentId": "a", "taskId": "t", "worktree": "/w"})
    assert (old.environment_image, old.environment_env) == (None, {})
    with pytest.raises(ValidationError, match="not environment variable names"):
        GateCheckRequested(agent_id="a", task_id="t", worktree="/w", environment_env={"A B": "1"})


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
