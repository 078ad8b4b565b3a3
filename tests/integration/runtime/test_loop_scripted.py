"""The loop with the scripted provider on a real worktree: plans, gates, bounds, cancellation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from services.spawner.runtime.loop import run_agent
from services.spawner.runtime.providers import make_provider
from services.spawner.runtime.providers.scripted import ScriptedProvider, parse_plan
from services.spawner.runtime.types import Bounds
from shared.messages.conversation import ConversationEntry
from shared.sandbox.base import DirEntry, ExecResult, SandboxGoneError
from shared.sandbox.host import HostSandbox
from shared.settings import ModelSettings
from tests.fakes.agents import Progress, make_spec
from tests.integration.sandbox.conftest import wait_dead, wait_for_pids

pytestmark = pytest.mark.integration

SCRIPTED = ModelSettings(MOSAIC_PROVIDER="scripted")


async def test_default_plan_writes_notes_and_finishes(sandbox: HostSandbox, worktree: Path) -> None:
    spec = make_spec(work_items=["first thing", "second thing"], task_id="T-42")
    progress = Progress()
    outcome = await run_agent(spec, sandbox, make_provider(SCRIPTED, spec), Bounds(), progress)
    assert outcome.status == "finished"
    assert outcome.summary == "wrote mosaic-notes/T-42.md"
    notes = (worktree / "mosaic-notes" / "T-42.md").read_text()
    assert "- first thing\n- second thing" in notes
    assert [d["turn"] for d in progress.of("turn_started")] == [1, 2]
    assert progress.of("tool_called") == [
        {"tool": "write_file", "summary": "mosaic-notes/T-42.md"},
        {"tool": "finish", "summary": "wrote mosaic-notes/T-42.md"},
    ]
    totals = [d["total"] for d in progress.of("tokens_used")]
    assert totals == sorted(totals)
    assert totals[-1] == outcome.tokens_used > 0


async def test_rejected_finish_then_fix_then_finish(sandbox: HostSandbox, worktree: Path) -> None:
    plan = [
        {
            "tool": "write_file",
            "input": {
                "path": "test_app.py",
                "content": ("from app import add\n\ndef test_add():\n    assert add(2, 2) == 5\n"),
            },
        },
        {"tool": "finish", "input": {"summary": "added a test"}},
        {"tool": "edit_file", "input": {"path": "test_app.py", "old": "== 5", "new": "== 4"}},
        {"tool": "finish", "input": {"summary": "fixed the test"}},
    ]
    spec = make_spec(plan=plan)
    provider = make_provider(SCRIPTED, spec)
    checks: list[str] = []

    async def gate(summary: str) -> str | None:
        checks.append(summary)
        code = "import test_app\ntest_app.test_add()"
        result = await sandbox.exec(f"python3 -B -c '{code}'", timeout=20)
        return None if result.exit_code == 0 else f"tests failed:\n{result.output[-300:]}"

    outcome = await run_agent(spec, sandbox, provider, Bounds(), Progress(), gate)
    assert outcome.status == "finished", outcome.reason
    assert outcome.summary == "fixed the test"
    assert checks == ["added a test", "fixed the test"]
    assert outcome.extra["finish_rejections"] == 1
    assert isinstance(provider, ScriptedProvider)
    rejection = provider.received[2][0]
    assert rejection.is_error
    assert "AssertionError" in rejection.content


async def test_too_many_rejections_fail(sandbox: HostSandbox) -> None:
    plan = [{"tool": "finish", "input": {"summary": f"try {n}"}} for n in range(5)]
    spec = make_spec(plan=plan)

    async def never(summary: str) -> str:
        return "lint failed"

    outcome = await run_agent(
        spec,
        sandbox,
        make_provider(SCRIPTED, spec),
        Bounds(max_finish_attempts=2),
        Progress(),
        never,
    )
    assert outcome.status == "failed"
    assert outcome.reason == "finish attempts (2) exceeded: lint failed"


async def test_max_turns_bound(sandbox: HostSandbox) -> None:
    spec = make_spec(plan=[{"tool": "list_files", "input": {"path": "."}}] * 10)
    outcome = await run_agent(
        spec, sandbox, make_provider(SCRIPTED, spec), Bounds(max_turns=3), Progress()
    )
    assert outcome.status == "failed"
    assert outcome.reason == "max turns (3) exceeded"
    assert outcome.turns == 3


async def test_token_budget_bound(sandbox: HostSandbox) -> None:
    step = {"tool": "list_files", "input": {"path": "."}, "usage": {"input": 600, "output": 100}}
    spec = make_spec(plan=[step] * 10)
    outcome = await run_agent(
        spec, sandbox, make_provider(SCRIPTED, spec), Bounds(max_tokens=2000), Progress()
    )
    assert outcome.status == "failed"
    assert outcome.reason == "token budget 2000 exceeded"
    assert outcome.turns == 3
    assert outcome.tokens_used == 2100


async def test_timeout_bound_kills_the_running_command(
    sandbox: HostSandbox, worktree: Path
) -> None:
    plan = [{"tool": "run_command", "input": {"command": "sleep 60 & echo $! > pids; wait"}}]
    spec = make_spec(plan=plan)
    started = time.monotonic()
    outcome = await run_agent(
        spec, sandbox, make_provider(SCRIPTED, spec), Bounds(timeout_s=0.5), Progress()
    )
    assert time.monotonic() - started < 3
    assert outcome.status == "failed"
    assert outcome.reason == "timeout after 0.5s"
    assert await wait_dead(await wait_for_pids(worktree / "pids", 1), within=1.0)


async def test_cancellation_propagates_and_kills_the_group(
    sandbox: HostSandbox, worktree: Path
) -> None:
    plan = [{"tool": "run_command", "input": {"command": "sleep 60 & echo $! > pids; sleep 60"}}]
    spec = make_spec(plan=plan)
    task = asyncio.create_task(
        run_agent(spec, sandbox, make_provider(SCRIPTED, spec), Bounds(), Progress())
    )
    pids = await wait_for_pids(worktree / "pids", 1)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
    assert await wait_dead(pids, within=1.0)


async def test_plan_exhausted_ends_the_turn(sandbox: HostSandbox) -> None:
    spec = make_spec(plan=[{"text": "nothing to do here"}])
    outcome = await run_agent(spec, sandbox, make_provider(SCRIPTED, spec), Bounds(), Progress())
    assert outcome.status == "finished"
    assert outcome.summary == "nothing to do here"


async def test_plan_from_mosaic_script(
    sandbox: HostSandbox, worktree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "plan.yaml"
    script.write_text(
        "steps:\n"
        "  - tool: write_file\n    input: {path: from-yaml.txt, content: hello}\n"
        "  - tool: finish\n    input: {summary: yaml plan done}\n"
    )
    monkeypatch.setenv("MOSAIC_SCRIPT", str(script))
    spec = make_spec()
    outcome = await run_agent(spec, sandbox, make_provider(SCRIPTED, spec), Bounds(), Progress())
    assert outcome.summary == "yaml plan done"
    assert (worktree / "from-yaml.txt").read_text() == "hello"


async def test_reviewer_plan_cannot_write(sandbox: HostSandbox, worktree: Path) -> None:
    plan = parse_plan(
        [
            {"tool": "write_file", "input": {"path": "hack.txt", "content": "x"}},
            {"tool": "finish", "input": {"summary": "confidence: 0.95"}},
        ]
    )
    provider = ScriptedProvider(plan)
    spec = make_spec("reviewer")
    outcome = await run_agent(spec, sandbox, provider, Bounds(), Progress())
    assert outcome.status == "finished"
    assert provider.received[1][0].is_error
    assert not (worktree / "hack.txt").exists()


class _VanishingSandbox:
    """A sandbox whose container disappears before the write (as a foreign reaper did)."""

    kind = "test"

    def __init__(self, inner: HostSandbox) -> None:
        self.inner = inner
        self.spec = inner.spec

    async def exec(self, command: str, *, timeout: float, max_output: int = 64_000) -> ExecResult:
        return await self.inner.exec(command, timeout=timeout, max_output=max_output)

    async def read_file(self, path: str, *, max_bytes: int) -> bytes:
        return await self.inner.read_file(path, max_bytes=max_bytes)

    async def write_file(self, path: str, data: bytes) -> None:
        raise SandboxGoneError("the sandbox container is gone")

    async def list_dir(self, path: str) -> list[DirEntry]:
        return await self.inner.list_dir(path)

    async def kill(self) -> None:
        await self.inner.kill()

    def kill_now(self) -> None:
        self.inner.kill_now()

    async def close(self) -> None:
        await self.inner.close()


async def test_a_vanished_sandbox_ends_the_run_instead_of_a_tool_error(
    sandbox: HostSandbox, worktree: Path
) -> None:
    """No finish (so no commit of the base) after the sandbox is gone: the attempt fails."""
    plan = [
        {"tool": "write_file", "input": {"path": "hello.py", "content": "print('hello')\n"}},
        {"tool": "finish", "input": {"summary": "added hello.py"}},
    ]
    spec = make_spec(plan=plan)
    checks: list[str] = []

    async def finish_check(summary: str) -> str | None:
        checks.append(summary)
        return None

    with pytest.raises(SandboxGoneError) as gone:
        await run_agent(
            spec,
            _VanishingSandbox(sandbox),
            make_provider(SCRIPTED, spec),
            Bounds(),
            Progress(),
            finish_check,
        )
    assert gone.value.retryable
    assert checks == []  # finish never reached the gates, commit or push
    assert not (worktree / "hello.py").exists()


async def test_the_conversation_is_handed_to_the_transcript_in_order(
    sandbox: HostSandbox,
) -> None:
    """Task, each call and its result, a sent-back finish, a refused call, all masked."""
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    plan = [
        {"tool": "run_command", "input": {"command": f"echo key {secret}"}},
        {"tool": "no_such_tool", "input": {}},
        {"tool": "finish", "input": {"summary": "first try"}},
        {"tool": "finish", "input": {"summary": "second try"}},
    ]
    spec = make_spec(plan=plan)
    kept: list[ConversationEntry] = []

    async def transcript(entries: list[ConversationEntry]) -> None:
        kept.extend(entries)

    verdicts = iter(["lint failed", None])

    async def gate(summary: str) -> str | None:
        return next(verdicts)

    outcome = await run_agent(
        spec, sandbox, make_provider(SCRIPTED, spec), Bounds(), Progress(), gate,
        transcript=transcript,
    )  # fmt: skip
    assert outcome.status == "finished", outcome.reason
    shape = [(e.kind, e.tool, e.turn, e.is_error) for e in kept]
    assert shape == [
        ("task", None, 0, False),
        ("tool_call", "run_command", 1, False),
        ("tool_result", "run_command", 1, False),
        ("tool_call", "no_such_tool", 2, False),
        ("tool_result", "no_such_tool", 2, True),
        ("tool_call", "finish", 3, False),
        ("tool_result", "finish", 3, True),
        ("tool_call", "finish", 4, False),
    ]
    assert all(secret not in e.text for e in kept)
    assert "key ***" in kept[2].text
    assert "lint failed" in kept[6].text
    assert kept[1].tool_call_id == kept[2].tool_call_id


async def test_a_failing_transcript_does_not_fail_the_agent(sandbox: HostSandbox) -> None:
    spec = make_spec(plan=[{"tool": "finish", "input": {"summary": "done"}}])

    async def broken(entries: list[ConversationEntry]) -> None:
        raise ConnectionError("valkey away")

    outcome = await run_agent(
        spec, sandbox, make_provider(SCRIPTED, spec), Bounds(), Progress(), transcript=broken
    )
    assert outcome.status == "finished"
