"""The loop's meter on a real worktree: told each call's usage (the four kinds apart,
from a scripted plan), before the call's tool calls run; what it raises ends the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.spawner.errors import BudgetExhaustedError
from services.spawner.runtime.loop import run_agent
from services.spawner.runtime.providers import Usage, make_provider
from services.spawner.runtime.types import Bounds
from shared.sandbox.host import HostSandbox
from shared.settings import ModelSettings
from tests.fakes.agents import Progress, make_spec

pytestmark = pytest.mark.integration

SCRIPTED = ModelSettings(MOSAIC_PROVIDER="scripted")


def write(name: str, usage: dict[str, int]) -> dict[str, object]:
    return {"tool": "write_file", "input": {"path": name, "content": "x\n"}, "usage": usage}


async def test_the_meter_sees_each_call_and_stops_the_run_before_its_tools(
    sandbox: HostSandbox, worktree: Path
) -> None:
    usage = {"input": 10, "output": 20, "cacheWrite": 30, "cacheRead": 40}
    plan = [write("one.txt", usage), write("two.txt", usage), write("three.txt", usage)]
    spec = make_spec(plan=plan)
    seen: list[Usage] = []

    async def meter(call: Usage) -> None:
        seen.append(call)
        if len(seen) == 2:
            raise BudgetExhaustedError("budget: reached")

    progress = Progress()
    with pytest.raises(BudgetExhaustedError, match="budget: reached"):
        await run_agent(spec, sandbox, make_provider(SCRIPTED, spec), Bounds(), progress,
                        meter=meter)  # fmt: skip
    assert seen == [Usage(input=10, output=20, cache_write=30, cache_read=40)] * 2
    assert seen[0].total == 100
    assert (worktree / "one.txt").exists()
    assert not (worktree / "two.txt").exists()  # the stopping call's tool never ran
    # the stopping call's tokens were reported before the stop
    assert progress.of("tokens_used")[-1]["total"] == 200
