"""Pure pieces of the runtime: path checks, tool contract, plans, prompts, provider choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.spawner.runtime import tools
from services.spawner.runtime.errors import PlanError, ProviderError
from services.spawner.runtime.loop import run_agent
from services.spawner.runtime.prompts import system_prompt, task_message
from services.spawner.runtime.providers import make_provider
from services.spawner.runtime.providers.anthropic import AnthropicProvider
from services.spawner.runtime.providers.base import ToolCall
from services.spawner.runtime.providers.scripted import (
    ScriptedProvider,
    ScriptSettings,
    default_plan,
    parse_plan,
    plan_for,
)
from services.spawner.runtime.types import Bounds
from shared.sandbox.base import SandboxPathError, SandboxSpec
from shared.sandbox.host import HostSandbox, HostSandboxFactory
from shared.sandbox.paths import check_relative
from shared.settings import ModelSettings
from tests.fakes.agents import Progress, make_spec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(".", "."), ("", "."), ("a/b", "a/b"), ("./a//b/", "a/b"), ("a/../b", "b"), ("a/..", ".")],
)
def test_relative_paths_normalise(raw: str, expected: str) -> None:
    assert str(check_relative(raw)) == expected


@pytest.mark.parametrize("raw", ["..", "../x", "a/../../x", "/etc/passwd", "~/x", "a\x00b"])
def test_escaping_paths_are_refused(raw: str) -> None:
    with pytest.raises(SandboxPathError):
        check_relative(raw)


def test_tool_sets_per_agent_type() -> None:
    names = {t: [d.name for d in tools.definitions(t)] for t in ("worker", "tester", "reviewer")}
    assert names["worker"] == [
        "list_files",
        "read_file",
        "write_file",
        "edit_file",
        "search",
        "run_command",
        "finish",
    ]
    assert names["tester"] == names["worker"]
    assert names["reviewer"] == ["list_files", "read_file", "search", "finish"]


def test_tool_schemas_are_clean_json_schema() -> None:
    by_name = {d.name: d.input_schema for d in tools.definitions("worker")}
    assert by_name["read_file"]["required"] == ["path"]
    assert set(by_name["read_file"]["properties"]) == {"path", "start_line", "end_line"}
    assert by_name["edit_file"]["required"] == ["path", "old", "new"]
    assert by_name["run_command"]["additionalProperties"] is False
    assert "title" not in str(by_name)


def test_validation_errors_name_the_field() -> None:
    bad = tools.validate(ToolCall("1", "edit_file", {"path": "a", "old": ""}), "worker")
    assert isinstance(bad, str)
    assert "old: String should have at least 1 character" in bad
    assert "new: Field required" in bad
    too_long = tools.validate(
        ToolCall("1", "run_command", {"command": "x", "timeout": 9999}), "worker"
    )
    assert isinstance(too_long, str)
    assert "timeout" in too_long
    ok = tools.validate(ToolCall("1", "read_file", {"path": "a", "start_line": 2}), "reviewer")
    assert isinstance(ok, tools.ReadFileInput)


def test_summaries_are_short_and_secret_free() -> None:
    command = tools.RunCommandInput(command="curl -H 'x-api-key: sk-ant-abc123' " + "x" * 200)
    summary = tools.summarize("run_command", command)
    assert len(summary) <= 80
    assert "sk-ant-abc123" not in summary
    assert (
        tools.summarize("write_file", tools.WriteFileInput(path="a/b.py", content="s")) == "a/b.py"
    )


def test_prompts() -> None:
    assert system_prompt("worker") != system_prompt("reviewer")
    assert "cannot modify files" in system_prompt("reviewer")
    spec = make_spec("tester", work_items=["one", "two"])
    message = task_message(spec)
    assert "1. one\n2. two" in message
    assert "tester agent" in message


def test_plans() -> None:
    spec = make_spec(task_id="abc")
    default = parse_plan(default_plan(spec))
    assert [s.tool for s in default] == ["write_file", "finish"]
    assert default[0].input["path"] == "mosaic-notes/abc.md"
    with pytest.raises(PlanError, match="plan step 2"):
        parse_plan([{"tool": "finish", "input": {}}, {"input": {}}])
    with pytest.raises(PlanError, match="plan step 1"):
        parse_plan([{"tool": "x", "bogus": 1}])


def test_plan_file_json(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('[{"tool": "finish", "input": {"summary": "s"}}]')
    steps = plan_for(make_spec(), ScriptSettings(MOSAIC_SCRIPT=path))
    assert steps[0].tool == "finish"
    path.write_text("{not json")
    with pytest.raises(PlanError, match="cannot read plan file"):
        plan_for(make_spec(), ScriptSettings(MOSAIC_SCRIPT=path))


def test_make_provider_chooses_by_settings() -> None:
    spec = make_spec()
    assert isinstance(
        make_provider(ModelSettings(MOSAIC_PROVIDER="scripted"), spec), ScriptedProvider
    )
    keyed = ModelSettings(ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL="http://127.0.0.1:9")
    assert isinstance(make_provider(keyed, spec), AnthropicProvider)
    with pytest.raises(ProviderError):
        make_provider(ModelSettings(MOSAIC_PROVIDER="anthropic"), spec)


def test_no_key_and_no_provider_is_no_model_not_a_scripted_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ANTHROPIC_API_KEY", "CLAUDE_API_KEY", "MOSAIC_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    bare = ModelSettings()
    assert bare.provider() is None
    assert bare.model_name() is None
    problem = bare.problem()
    assert problem is not None
    assert "ANTHROPIC_API_KEY" in problem
    assert "MOSAIC_PROVIDER" in problem
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        make_provider(bare, make_spec())
    # an empty setting is no setting (as a shell's VAR= means)
    monkeypatch.setenv("MOSAIC_PROVIDER", "")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    assert ModelSettings().provider() is None
    monkeypatch.setenv("CLAUDE_API_KEY", "k")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    keyed = ModelSettings()
    assert (keyed.provider(), keyed.model_name(), keyed.problem()) == (
        "anthropic",
        "claude-sonnet-4-5",
        None,
    )
    explicit = ModelSettings(MOSAIC_PROVIDER="scripted")
    assert (explicit.provider(), explicit.model_name(), explicit.problem()) == (
        "scripted",
        "scripted",
        None,
    )
    monkeypatch.delenv("CLAUDE_API_KEY")
    keyless = ModelSettings(MOSAIC_PROVIDER="anthropic").problem()
    assert keyless is not None
    assert "ANTHROPIC_API_KEY" in keyless


async def _local(tmp_path: Path) -> HostSandbox:
    spec = SandboxSpec(agent_id="unit", task_id="unit", worktree=tmp_path)
    return await HostSandboxFactory().create(spec)


async def test_loop_over_a_real_local_sandbox(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    plan = [
        {"tool": "edit_file", "input": {"path": "app.py", "old": "x = 1", "new": "x = 2"}},
        {"tool": "run_command", "input": {"command": "grep -c 'x = 2' app.py"}},
        {"tool": "finish", "input": {"summary": "x is 2"}},
    ]
    spec = make_spec(plan=plan)
    progress = Progress()
    box = await _local(tmp_path)
    try:
        outcome = await run_agent(
            spec,
            box,
            make_provider(ModelSettings(MOSAIC_PROVIDER="scripted"), spec),
            Bounds(),
            progress,
        )
    finally:
        await box.close()
    assert outcome.status == "finished"
    assert (tmp_path / "app.py").read_text() == "x = 2\n"
    assert progress.of("tool_called")[1] == {
        "tool": "run_command",
        "summary": "grep -c 'x = 2' app.py",
    }


async def test_failing_progress_sink_does_not_fail_the_agent(tmp_path: Path) -> None:
    async def broken(kind: str, detail: dict[str, object]) -> None:
        raise RuntimeError("bus down")

    spec = make_spec()
    box = await _local(tmp_path)
    try:
        outcome = await run_agent(
            spec, box, ScriptedProvider(parse_plan(default_plan(spec))), Bounds(), broken
        )
    finally:
        await box.close()
    assert outcome.status == "finished"
    assert (tmp_path / "mosaic-notes").is_dir()
