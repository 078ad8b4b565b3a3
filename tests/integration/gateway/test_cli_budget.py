"""Budgets at the edge, through the CLI and the gateway (real NATS and Valkey, no
spawner): ``mosaic spawn --budget-*`` sends ``options.budget`` (a bad one is the
gateway's 422 naming the field), and while the day's budget holds intake the spawn is
refused naming the budget; ``mosaic status`` shows the agent's spend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.messages.spend import TokenUsage
from tests.integration.gateway.conftest import ADMIN, CliRun, Gateway

pytestmark = pytest.mark.integration


async def test_cli_budgets_and_the_budget_hold(
    gateway: Gateway,
    remote_repo: Path,
    unique: str,
    cli: CliRun,
) -> None:
    async def run(*argv: str) -> tuple[int, str, str]:
        return await cli(argv[0], "--url", gateway.url, *argv[1:])

    spawn = ("spawn", "--repo", str(remote_repo), "--item", "x", "--json")
    code, _, err = await run(*spawn, "--budget-tokens", "0")
    assert code == 1
    assert "options.budget.tokens" in err
    code, out, err = await run(*spawn, "--budget-tokens", "5000", "--budget-usd", "1.5")
    assert code == 0, err
    agent_id = json.loads(out)["agentId"]

    # a spawner charged a call of this agent, and that reached a $0.01 day
    call = TokenUsage(model="claude-sonnet-4-5", input_tokens=1000, output_tokens=1000)
    charged = await gateway.store.charge(agent_id, call, 0.018, agent_type="worker",
                                         limit_usd=0.01)  # fmt: skip
    assert charged.newly_held
    code, out, _ = await run("status", agent_id)
    assert code == 0
    assert '"inputTokens": 1000' in out
    code, _, err = await run(*spawn)
    assert code == 1
    assert "budget_exhausted" in err or "503" in err
    assert "daily budget of $0.01 reached" in err
    async with gateway.client(ADMIN) as http:
        assert (await http.post("/agents/resume")).json()["held"] is False
    code, _, err = await run(*spawn)
    assert code == 0, err
