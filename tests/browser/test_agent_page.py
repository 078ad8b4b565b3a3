"""The agent's page in a real browser, against the whole system: a finished agent's page
shows its conversation (a secret it printed masked), its pushed diff and its gate
outputs, and is reached from the list and by its address; a running agent's page
follows it live (new tool calls and events appear without a reload) and its Kill
button kills it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from mosaic.supervisor import Supervisor
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_dashboard import plan_task, sign_in, slow_task, spawn, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "agent-page.png"
# built, so no file of the project holds a token-shaped string
SECRET = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"


def agent_status(system: Supervisor, agent_id: str) -> dict[str, Any]:
    token = system.tokens["MOSAIC_API_TOKEN"]
    answer = httpx.get(
        f"{system.gateway_url}/agents/{agent_id}/status",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    answer.raise_for_status()
    return dict(answer.json())


def click(driver: Any, selector: str, what: str) -> None:
    """Click what may be re-rendered between finding and clicking it."""
    from selenium.webdriver.common.by import By

    def go(d: Any) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait_for(driver, go, what)


def texts(driver: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [node.text for node in driver.find_elements(By.CSS_SELECTOR, selector)]


def test_a_finished_agents_page_shows_conversation_diff_and_gates(
    driver: Any, system: Supervisor, remote_repo: Path, unique: str
) -> None:
    from selenium.webdriver.common.by import By

    plan = [
        {"tool": "run_command", "input": {"command": f"echo TOKEN={SECRET}; echo printed"}},
        {
            "tool": "write_file",
            "input": {"path": "app.py", "content": "def add(a, b):\n    return b + a\n"},
        },
        {"tool": "write_file", "input": {"path": f"page-{unique}.txt", "content": "hello\n"}},
        {"tool": "finish", "input": {"summary": "swapped the operands"}},
    ]
    agent = spawn(system, plan_task(remote_repo, f"page-{unique}", plan))
    sign_in(driver, system, system.tokens["MOSAIC_API_TOKEN"])
    row = f'tr[data-agent-id="{agent}"]'
    wait_for(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, row).get_attribute("data-state") == "completed",
        "the agent to complete",
        timeout=120,
    )
    assert agent_status(system, agent)["pushedCommit"]

    # from the list: the agent's id links to its page
    click(driver, f"{row} a.agent-link", "the agent's link")
    wait_for(driver, lambda d: d.current_url.endswith(f"#/agents/{agent}"), "the page's address")
    wait_for(driver, lambda d: d.find_element(By.ID, "agent-page").is_displayed(), "the page")
    assert not driver.find_element(By.ID, "board").is_displayed()
    assert driver.find_element(By.ID, "page-title").text == agent
    assert driver.find_element(By.ID, "page-state").text == "completed"
    assert not driver.find_element(By.ID, "page-kill").is_displayed()  # nothing to kill

    # the conversation: the task, the calls, what came back (the secret masked)
    results = '#conversation .entry[data-kind="tool_result"]'
    wait_for(
        driver,
        lambda d: any("printed" in t for t in texts(d, results)),
        "the command's result in the conversation",
    )
    kinds = [
        e.get_attribute("data-kind")
        for e in driver.find_elements(By.CSS_SELECTOR, "#conversation .entry")
    ]
    assert kinds[0] == "task"
    assert {"tool_call", "tool_result"} <= set(kinds)
    conversation = driver.find_element(By.ID, "conversation").text
    assert "TOKEN=***" in conversation
    assert "swapped the operands" in conversation
    assert SECRET not in driver.page_source

    # the diff: the pushed commit against main, each file, the patch lines coloured
    source = "diff-source"
    wait_for(
        driver, lambda d: d.find_element(By.ID, source).text.startswith("pushed commit"), "the diff"
    )
    files = driver.find_element(By.ID, "diff-files").text
    assert "app.py" in files
    assert f"page-{unique}.txt" in files
    added = texts(driver, "#diff-patch .line.add")
    assert "+    return b + a" in added
    assert "+hello" in added
    assert "-    return a + b" in texts(driver, "#diff-patch .line.del")

    # the gates: each with its status, duration and output
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#gate-runs .gate-output"), "gates")
    gates = driver.find_elements(By.CSS_SELECTOR, "#gate-runs .gate-output")
    statuses = {g.get_attribute("data-gate"): g.get_attribute("data-status") for g in gates}
    assert statuses, "no gate listed"
    assert "passed" in statuses.values(), statuses
    first = gates[0]
    first.find_element(By.TAG_NAME, "summary").click()
    assert " s" in first.find_element(By.CSS_SELECTOR, "summary .sub").text  # its duration
    assert first.find_element(By.TAG_NAME, "pre").text.strip()  # its output
    assert "approved" in driver.find_element(By.CSS_SELECTOR, "#gate-runs h3").text

    # the timeline: the task's trace, service by service (traces are on by default), then
    # the agent's events
    def traced_services(d: Any) -> set[str]:
        items = d.find_elements(By.CSS_SELECTOR, "#timeline ol.trace li")
        return {str(i.get_attribute("data-service")) for i in items}

    wait_for(
        driver,
        lambda d: {"gateway", "spawner", "gitops", "gates"} <= traced_services(d),
        "the trace's spans of gateway, spawner, gitops and gates",
    )
    assert "from trace" in driver.find_element(By.ID, "timeline-source").text

    def event_kinds(d: Any) -> set[str]:
        items = d.find_elements(By.CSS_SELECTOR, "#timeline .timeline-events li")
        return {str(i.get_attribute("data-kind")) for i in items}

    # read through wait_for: the page renders the timeline again when a trace's last
    # spans arrive, and an element read during that is stale (CI caught one)
    wait_for(
        driver,
        lambda d: {"state", "progress", "gate"} <= event_kinds(d),
        "the agent's state, progress and gate events on the timeline",
    )
    facts = driver.find_element(By.ID, "page-facts").text
    assert "scripted" in facts
    assert "none · UNSAFE" in facts
    assert "host tools (no sandbox)" in facts

    ARTIFACTS.mkdir(exist_ok=True)
    driver.set_window_size(1400, 2200)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(ARTIFACTS / "agent-page.png"))
    if os.environ.get("MOSAIC_DOCS_SCREENSHOTS") == "1":  # refresh docs/img on purpose only
        shutil.copyfile(ARTIFACTS / "agent-page.png", DOCS_SHOT)

    # the address alone opens it again after a reload; back goes to the list
    driver.refresh()
    wait_for(driver, lambda d: d.find_element(By.ID, "agent-page").is_displayed(), "the page again")
    wait_for(driver, lambda d: d.find_element(By.ID, "page-title").text == agent, "its title")
    driver.find_element(By.ID, "page-back").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "board").is_displayed(), "the list")
    driver.get(f"{system.gateway_url}/#/agents/no-such-agent")
    wait_for(driver, lambda d: "No agent no-such-agent" in d.find_element(By.ID, "page-error").text,
             "the unknown agent named")  # fmt: skip


def test_a_running_agents_page_is_live_and_its_kill_button_kills(
    driver: Any, system: Supervisor, remote_repo: Path, unique: str
) -> None:
    from selenium.webdriver.common.by import By

    agent = spawn(system, slow_task(remote_repo, f"live-{unique}", sleeps=40))
    driver.get(f"{system.gateway_url}/#/agents/{agent}")  # linked straight to the page
    driver.find_element(By.ID, "login-token").send_keys(system.tokens["MOSAIC_API_TOKEN"])
    driver.find_element(By.ID, "login-submit").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "agent-page").is_displayed(), "the page")
    wait_for(driver, lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "live",
             "the live feed")  # fmt: skip
    wait_for(driver, lambda d: d.find_element(By.ID, "page-state").text == "running", "running")

    def calls(d: Any) -> int:
        return len(d.find_elements(By.CSS_SELECTOR, '#conversation .entry[data-kind="tool_call"]'))

    def events(d: Any) -> int:
        return len(d.find_elements(By.CSS_SELECTOR, "#timeline .timeline-events li"))

    wait_for(driver, lambda d: calls(d) >= 1, "a first tool call")
    seen_calls, seen_events = calls(driver), events(driver)
    # no reload from here on: what appears comes over the feed
    wait_for(driver, lambda d: calls(d) > seen_calls, "a new tool call, live", timeout=30)
    wait_for(driver, lambda d: events(d) > seen_events, "a new event, live", timeout=30)
    assert "sleep 2" in driver.find_element(By.ID, "conversation").text
    wait_for(
        driver,
        lambda d: d.find_element(By.ID, "diff-source").text.startswith("the agent's repository"),
        "the workspace diff",
    )

    kill = driver.find_element(By.ID, "page-kill")
    assert kill.is_displayed()
    kill.click()
    wait_for(driver, lambda d: d.find_element(By.ID, "page-state").text == "killed", "killed", 30)
    wait_for(driver, lambda d: not d.find_element(By.ID, "page-kill").is_displayed(), "no Kill")
    assert agent_status(system, agent)["state"] == "killed"
    wait_for(
        driver,
        lambda d: any("killed" in t for t in texts(d, '#timeline li[data-kind="state"]')),
        "the kill in the timeline",
    )
