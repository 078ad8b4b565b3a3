"""The dashboard's spend (issue 23, budgets) in a real browser: each agent's spend in
the list, the UTC day's total against the daily budget, and the budget's hold banner.

Scripted agents whose plan reports usage: the ``scripted`` model is not in the price
table, so it is priced at the default price ($15 / $75 per million input / output
tokens), which is what an unknown model costs (never $0).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_dashboard import sign_in, wait_for
from tests.systems import operator_http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def system(
    browser_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("home"),
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "scripted",
            "MOSAIC_SANDBOX": "none",
            "TASK_ACK_WAIT_S": "5",
            "MOSAIC_BUDGET_USD_PER_DAY": "0.05",
        },
    )
    with Supervisor(config) as supervisor:
        yield supervisor


def task(repo: Path, task_id: str, tokens: int) -> dict[str, Any]:
    usage = {"input": tokens, "output": tokens}
    plan = [
        {
            "tool": "write_file",
            "input": {"path": f"{task_id}.txt", "content": "x\n"},
            "usage": usage,
        },
        {"tool": "finish", "input": {"summary": "done"}, "usage": {"input": 0, "output": 0}},
    ]
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": [f"Do {task_id}"]},
        "options": {"plan": plan},
        "gateProfile": "minimal",
    }


def test_spend_per_agent_the_day_total_and_the_budget_hold(
    driver: Any, system: Supervisor, remote_repo: Path, unique: str
) -> None:
    from selenium.webdriver.common.by import By

    with operator_http(system, 10) as http:
        sign_in(driver, system, system.tokens["MOSAIC_API_TOKEN"])
        # 200 input + 200 output tokens at $15 / $75: $0.018; 400 + 400: $0.036
        small = http.post("/agents/spawn", json=task(remote_repo, f"s-{unique}", 200)).json()
        cell = f'tr[data-agent-id="{small["agentId"]}"] td.spend .usd'
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, cell).text == "$0.0180",
                 "the small agent's spend")  # fmt: skip
        total = "#spend-today b"
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, total).text == "$0.0180",
                 "the day's total")  # fmt: skip
        # the summary re-renders on every event: read it where a stale element is retried
        wait_for(
            driver,
            lambda d: (
                d.find_element(By.CSS_SELECTOR, "#spend-today span").text.lower()
                == "spent today of $0.0500"
            ),
            "the day's total against the budget",
        )
        assert not driver.find_element(By.ID, "hold-banner").is_displayed()

        big = http.post("/agents/spawn", json=task(remote_repo, f"b-{unique}", 400)).json()
        cell = f'tr[data-agent-id="{big["agentId"]}"] td.spend .usd'
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, cell).text == "$0.0360",
                 "the big agent's spend")  # fmt: skip
        wait_for(driver, lambda d: d.find_element(By.ID, "hold-banner").is_displayed(),
                 "the budget's hold banner")  # fmt: skip
        wait_for(
            driver,
            lambda d: (
                d.find_element(By.ID, "hold-title").text == "Daily budget spent:"
                and "daily budget of $0.05 reached" in d.find_element(By.ID, "hold-text").text
            ),
            "the banner naming the budget",
        )
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, total).text == "$0.0540",
                 "the day's total after the second agent")  # fmt: skip
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard-spend.png"))
        refused = http.post("/agents/spawn", json=task(remote_repo, f"late-{unique}", 1))
        assert refused.status_code == 503
