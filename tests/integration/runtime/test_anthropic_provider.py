"""The anthropic provider: the real SDK against the fake Messages API, tools on a real worktree."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from services.spawner.runtime.loop import run_agent
from services.spawner.runtime.providers import make_provider
from services.spawner.runtime.providers.anthropic import AnthropicProvider
from services.spawner.runtime.types import AgentOutcome, Bounds
from shared.sandbox.host import HostSandbox
from shared.settings import ModelSettings
from tests.fakes.agents import Progress, make_spec
from tests.fakes.fixtures import FAKE_API_KEY
from tests.fakes.messages_api import (
    FakeMessagesAPI,
    overloaded,
    rate_limited,
    reply,
    text,
    tool_use,
    unauthorized,
)

pytestmark = pytest.mark.integration

ADD_THREE = "python3 -B -c 'import app; print(app.add(1, 2, 3))'"


async def run(
    settings: ModelSettings, sandbox: HostSandbox, bounds: Bounds | None = None, **kw: Any
) -> tuple[AgentOutcome, Progress]:
    spec = make_spec(**kw)
    progress = Progress()
    provider = make_provider(settings, spec)
    outcome = await run_agent(spec, sandbox, provider, bounds or Bounds(), progress)
    return outcome, progress


async def test_worker_edits_the_worktree(
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    sandbox: HostSandbox,
    worktree: Path,
) -> None:
    api = fake_messages_api
    api.enqueue(
        reply(text("Let me look."), tool_use("read_file", {"path": "app.py"}, id="toolu_1")),
        reply(
            tool_use(
                "edit_file",
                {
                    "path": "app.py",
                    "old": "def add(a, b):\n    return a + b",
                    "new": "def add(a, b, c=0):\n    return a + b + c",
                },
                id="toolu_2",
            )
        ),
        reply(tool_use("run_command", {"command": ADD_THREE}, id="toolu_3")),
        reply(tool_use("finish", {"summary": "add() takes a third number"}, id="toolu_4")),
    )
    outcome, progress = await run(fake_model_settings, sandbox)
    assert outcome.status == "finished", outcome.reason
    assert outcome.summary == "add() takes a third number"
    assert "return a + b + c" in (worktree / "app.py").read_text()
    assert len(api.requests) == 4
    first = api.requests[0]
    assert first.api_key == FAKE_API_KEY
    assert first.body["model"] == "claude-test"
    assert first.body["max_tokens"] == 1024
    task = first.body["messages"][0]["content"][0]["text"]
    assert "make add() handle three numbers" in task
    assert "Repository: /srv/repos/demo" in task
    assert "Branch: main" in task
    assert "python" in task
    assert first.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert first.body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert [t["name"] for t in first.body["tools"]] == [
        "list_files",
        "read_file",
        "write_file",
        "edit_file",
        "search",
        "run_command",
        "finish",
    ]
    (read,) = api.requests[1].tool_results()
    assert read["tool_use_id"] == "toolu_1"
    assert "def add(a, b):" in read["content"]
    assert "is_error" not in read
    assert api.requests[1].last_user_blocks()[-1]["cache_control"] == {"type": "ephemeral"}
    (ran,) = api.requests[3].tool_results()
    assert ran["content"].startswith("exit code: 0\n6")
    assert [d["tool"] for d in progress.of("tool_called")] == [
        "read_file",
        "edit_file",
        "run_command",
        "finish",
    ]
    assert outcome.tokens_used == progress.of("tokens_used")[-1]["total"] > 0


async def test_overloaded_then_success(
    fake_messages_api: FakeMessagesAPI, fake_model_settings: ModelSettings, sandbox: HostSandbox
) -> None:
    fake_messages_api.enqueue(
        overloaded(), rate_limited(), reply(tool_use("finish", {"summary": "ok"}))
    )
    outcome, _ = await run(fake_model_settings, sandbox)
    assert outcome.status == "finished"
    assert [r.status for r in fake_messages_api.requests] == [529, 429, 200]


async def test_retries_exhausted_fail_with_a_reason(
    fake_messages_api: FakeMessagesAPI, fake_model_settings: ModelSettings, sandbox: HostSandbox
) -> None:
    fake_messages_api.enqueue(*[overloaded() for _ in range(10)])
    outcome, _ = await run(fake_model_settings, sandbox)
    assert outcome.status == "failed"
    assert outcome.reason == (
        "model provider failed: the model API kept failing after 4 retries: "
        "529 overloaded_error: Overloaded"
    )
    assert len(fake_messages_api.requests) == 5


async def test_bad_key_fails_clearly_without_leaking_it(
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    sandbox: HostSandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_messages_api.enqueue(unauthorized())
    caplog.set_level(logging.DEBUG)
    outcome, progress = await run(fake_model_settings, sandbox)
    assert outcome.status == "failed"
    assert outcome.reason is not None
    assert "401 authentication_error: invalid x-api-key" in outcome.reason
    assert "ANTHROPIC_API_KEY" in outcome.reason
    assert len(fake_messages_api.requests) == 1
    everything = json.dumps([outcome.reason, outcome.extra, progress.events]) + caplog.text
    assert FAKE_API_KEY not in everything


async def test_wrong_key_is_rejected_by_the_server(
    fake_messages_api: FakeMessagesAPI, sandbox: HostSandbox
) -> None:
    settings = ModelSettings(
        MOSAIC_PROVIDER="anthropic",
        ANTHROPIC_API_KEY="wrong",
        ANTHROPIC_BASE_URL=fake_messages_api.url,
    )
    outcome, _ = await run(settings, sandbox)
    assert outcome.status == "failed"
    assert "401" in (outcome.reason or "")


async def test_malformed_tool_input_goes_back_as_an_error(
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    sandbox: HostSandbox,
    worktree: Path,
) -> None:
    fake_messages_api.enqueue(
        reply(
            tool_use("write_file", {"path": "a.txt"}, id="toolu_bad"),
            tool_use("read_file", "not an object", id="toolu_str"),
            tool_use("teleport", {}, id="toolu_unknown"),
            tool_use("read_file", {"path": "../../etc/passwd"}, id="toolu_escape"),
        ),
        reply(tool_use("write_file", {"path": "a.txt", "content": "fine"}, id="toolu_good")),
        reply(text("All done: wrote a.txt.")),
    )
    outcome, _ = await run(fake_model_settings, sandbox)
    assert outcome.status == "finished"
    assert outcome.summary == "All done: wrote a.txt."
    results = fake_messages_api.requests[1].tool_results()
    assert [r["tool_use_id"] for r in results] == [
        "toolu_bad",
        "toolu_str",
        "toolu_unknown",
        "toolu_escape",
    ]
    assert all(r["is_error"] is True for r in results)
    assert "content: Field required" in results[0]["content"]
    assert "unknown tool 'teleport'" in results[2]["content"]
    assert "escapes the worktree" in results[3]["content"]
    assert (worktree / "a.txt").read_text() == "fine"


async def test_max_tokens_stop_is_handled(
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    sandbox: HostSandbox,
    worktree: Path,
) -> None:
    fake_messages_api.enqueue(
        reply(text("I will write a very long"), stop_reason="max_tokens"),
        reply(
            tool_use("write_file", {"path": "big.txt"}, id="toolu_cut"), stop_reason="max_tokens"
        ),
        reply(tool_use("finish", {"summary": "done in smaller steps"})),
    )
    outcome, _ = await run(fake_model_settings, sandbox)
    assert outcome.status == "finished", outcome.reason
    second = fake_messages_api.requests[1].last_user_blocks()
    assert second[0]["type"] == "text"
    assert "max_tokens" in second[0]["text"]
    (cut,) = fake_messages_api.requests[2].tool_results()
    assert cut["is_error"] is True
    assert "Not executed" in cut["content"]
    assert not (worktree / "big.txt").exists()


async def test_reviewer_gets_read_only_tools(
    fake_messages_api: FakeMessagesAPI, fake_model_settings: ModelSettings, sandbox: HostSandbox
) -> None:
    fake_messages_api.enqueue(
        reply(tool_use("finish", {"summary": "confidence: 0.93\nlooks right"}))
    )
    outcome, _ = await run(fake_model_settings, sandbox, agent_type="reviewer")
    assert outcome.summary.startswith("confidence: 0.93")
    body = fake_messages_api.requests[0].body
    assert [t["name"] for t in body["tools"]] == ["list_files", "read_file", "search", "finish"]
    assert "Role: reviewer" in body["system"][0]["text"]


async def test_token_budget_from_reported_usage(
    fake_messages_api: FakeMessagesAPI, fake_model_settings: ModelSettings, sandbox: HostSandbox
) -> None:
    usage = {"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 400}
    fake_messages_api.enqueue(
        *[reply(tool_use("list_files", {"path": "."}), usage=usage) for _ in range(5)]
    )
    outcome, progress = await run(fake_model_settings, sandbox, Bounds(max_tokens=1000))
    assert outcome.status == "failed"
    assert outcome.reason == "token budget 1000 exceeded"
    assert progress.of("tokens_used")[0] == {"input": 500, "output": 50, "total": 550}


async def test_make_provider_needs_a_key() -> None:
    from services.spawner.runtime.errors import ProviderError

    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider(ModelSettings(MOSAIC_PROVIDER="anthropic"), make_spec())
