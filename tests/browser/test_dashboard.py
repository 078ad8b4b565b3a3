"""The dashboard in a real browser: agents appear and change state live, Kill works,
Kill all is absent for operators and works (with a confirmation) for admins."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mosaic.supervisor import Supervisor
from tests.browser.conftest import ARTIFACTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def slow_task(repo: Path, task_id: str, sleeps: int) -> dict[str, Any]:
    """A scripted agent that runs a few seconds per step, then writes a file and finishes."""
    plan: list[dict[str, Any]] = [
        {"tool": "run_command", "input": {"command": "sleep 2"}} for _ in range(sleeps)
    ]
    plan += [
        {"tool": "write_file", "input": {"path": f"{task_id}.txt", "content": "done\n"}},
        {"tool": "finish", "input": {"summary": f"{task_id} done"}},
    ]
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": [f"Do {task_id}"]},
        "options": {"plan": plan},
        "gateProfile": "minimal",
    }


def spawn(system: Supervisor, body: dict[str, Any]) -> str:
    token = system.tokens["MOSAIC_API_TOKEN"]
    answer = httpx.post(
        f"{system.gateway_url}/agents/spawn",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"])


def sign_in(driver: Any, system: Supervisor, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{system.gateway_url}/")
    driver.find_element(By.ID, "login-token").send_keys(token)
    driver.find_element(By.ID, "login-submit").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "board").is_displayed(), "the board")
    wait_for(
        driver,
        lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "live",
        "the live feed",
    )


def wait_for(driver: Any, condition: Any, what: str, timeout: float = 60) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    ).until(_safe(condition, WebDriverException), message=f"waiting for {what}")


def _safe(condition: Any, errors: type[Exception]) -> Any:
    def check(driver: Any) -> Any:
        try:
            return condition(driver)
        except errors:
            return False

    return check


def row_state(driver: Any, agent_id: str) -> str | None:
    """The state the agent's row shows; read again if the row re-rendered meanwhile (it
    does on every event: a node found a moment ago may be gone)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):
        rows = driver.find_elements(By.CSS_SELECTOR, f'tr[data-agent-id="{agent_id}"]')
        try:
            return rows[0].get_attribute("data-state") if rows else None
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"the row of {agent_id} kept re-rendering")


def seen_state(driver: Any, agent_id: str, seen: list[str]) -> str | None:
    """The row's state now, appended to ``seen`` when it changed (one read, so a wait on
    it and the list agree)."""
    state = row_state(driver, agent_id)
    if state and (not seen or seen[-1] != state):
        seen.append(state)
    return state


def test_operator_sees_agents_live_and_kills_one(
    driver: Any, system: Supervisor, remote_repo: Path, unique: str
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(driver, system, system.tokens["MOSAIC_API_TOKEN"])
    assert driver.find_element(By.ID, "role").text.lower() == "operator"
    assert not driver.find_element(By.ID, "kill-all").is_displayed()
    assert driver.find_element(By.ID, "yolo-banner").is_displayed() is False

    keep = spawn(system, slow_task(remote_repo, f"keep-{unique}", sleeps=2))
    doomed = spawn(system, slow_task(remote_repo, f"doomed-{unique}", sleeps=30))
    # both appear without a reload, and change state live
    kept_states: list[str] = []
    wait_for(driver, lambda d: row_state(d, keep) and row_state(d, doomed), "both rows")
    wait_for(
        driver,
        lambda d: seen_state(d, keep, kept_states) and row_state(d, doomed) == "running",
        "the doomed agent to run",
    )
    wait_for(
        driver,
        lambda d: d.find_element(
            By.CSS_SELECTOR, f'tr[data-agent-id="{doomed}"] .progress'
        ).text.startswith(("1 turns", "2 turns", "3 turns")),
        "progress on the doomed agent",
    )
    # what runs it: MOSAIC_SANDBOX=none is shown as unsafe, in red, row and banner
    runs_on = f'tr[data-agent-id="{doomed}"] .runs-on'
    wait_for(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, f"{runs_on} .sandbox").text == "none · UNSAFE",
        "the unsafe sandbox on the row",
    )
    sandbox = driver.find_element(By.CSS_SELECTOR, f"{runs_on} .sandbox")
    assert sandbox.get_attribute("data-unsafe") == "true"
    assert "201, 42, 42" in sandbox.value_of_css_property("background-color")  # --bad
    cell = driver.find_element(By.CSS_SELECTOR, runs_on).text
    assert "host tools (no sandbox)" in cell
    assert "scripted" in cell
    wait_for(driver, lambda d: d.find_element(By.ID, "unsafe-banner").is_displayed(), "banner")

    def click_kill(d: Any) -> bool:  # the row may re-render between find and click
        d.find_element(By.CSS_SELECTOR, f'tr[data-agent-id="{doomed}"] button.kill').click()
        return True

    wait_for(driver, click_kill, "clicking Kill")
    wait_for(driver, lambda d: row_state(d, doomed) == "killed", "the kill", timeout=20)
    wait_for(
        driver,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, f'tr[data-agent-id="{doomed}"] .state').text == "killed"
        ),
        "the killed badge",
    )
    assert not driver.find_elements(By.CSS_SELECTOR, f'tr[data-agent-id="{doomed}"] button.kill')
    wait_for(
        driver,
        lambda d: seen_state(d, keep, kept_states) == "completed",
        "the kept agent to complete",
        timeout=90,
    )
    assert kept_states[-1] == "completed"
    assert len(kept_states) >= 2, kept_states  # seen in more than one state, live
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "dashboard-operator.png"))


def plan_task(repo: Path, task_id: str, plan: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": [f"Do {task_id}"]},
        "options": {"plan": plan},
        "gateProfile": "minimal",
    }


def test_overlapping_agents_are_shown(
    driver: Any, system: Supervisor, remote_repo: Path, unique: str
) -> None:
    """B edits line 2 of app.py and works on; A changes the same line and pushes: B's row
    shows A as an overlap (the conflict forecast), live, with the file and line."""
    from selenium.webdriver.common.by import By

    sign_in(driver, system, system.tokens["MOSAIC_API_TOKEN"])
    edit = {"tool": "write_file", "input": {"path": "app.py", "content": ""}}
    sleep = {"tool": "run_command", "input": {"command": "sleep 1"}}
    b_edit = {
        **edit,
        "input": {"path": "app.py", "content": "def add(a, b):\n    return a + b  # B\n"},
    }
    a_edit = {**edit, "input": {"path": "app.py", "content": "def add(a, b):\n    return b + a\n"}}
    finish = {"tool": "finish", "input": {"summary": "done"}}
    b = spawn(system, plan_task(remote_repo, f"ovb-{unique}", [b_edit, *[sleep] * 60, finish]))
    wait_for(driver, lambda d: row_state(d, b) == "running", "B running")
    a = spawn(system, plan_task(remote_repo, f"ova-{unique}", [sleep, sleep, a_edit, finish]))
    badge = f'tr[data-agent-id="{b}"] .overlap[data-agent-id="{a}"]'
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, badge), "B's overlap badge", 120)
    files = f'tr[data-agent-id="{b}"] .overlap-files'
    # the row re-renders on every event: each read is a wait that tolerates a stale node
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, badge).text == f"⚠ {a[:8]}",
             "the badge naming A")  # fmt: skip
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, files).text == "app.py line 2",
             "the overlapping file and line")  # fmt: skip
    wait_for(driver, lambda d: row_state(d, a) == "completed", "A completed")
    assert not driver.find_elements(By.CSS_SELECTOR, f'tr[data-agent-id="{a}"] .overlap')
    wait_for(
        driver,
        lambda d: any(
            "overlaps" in li.text for li in d.find_elements(By.CSS_SELECTOR, "#events li")
        ),
        "the overlap event in the live events",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "dashboard-overlap.png"))
    token = system.tokens["MOSAIC_API_TOKEN"]
    httpx.post(f"{system.gateway_url}/agents/{b}/kill",
               headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
    wait_for(driver, lambda d: row_state(d, b) == "killed", "B killed", 30)


def test_admin_kills_all_after_confirming(
    driver: Any, system: Supervisor, remote_repo: Path, unique: str
) -> None:
    from selenium.webdriver.common.by import By

    ids = [spawn(system, slow_task(remote_repo, f"all{i}-{unique}", sleeps=30)) for i in range(2)]
    sign_in(driver, system, system.tokens["MOSAIC_ADMIN_TOKEN"])
    assert driver.find_element(By.ID, "role").text.lower() == "admin"
    kill_all = driver.find_element(By.ID, "kill-all")
    assert kill_all.is_displayed()
    wait_for(driver, lambda d: all(row_state(d, i) == "running" for i in ids), "both running")
    wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events li")) >= 3, "events")
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    # cancel first: nothing happens
    kill_all.click()
    wait_for(driver, lambda d: d.find_element(By.ID, "confirm-dialog").is_displayed(), "dialog")
    driver.find_element(By.ID, "confirm-no").click()
    time.sleep(0.5)
    assert all(row_state(driver, i) == "running" for i in ids)
    kill_all.click()
    wait_for(driver, lambda d: d.find_element(By.ID, "confirm-dialog").is_displayed(), "dialog")
    driver.find_element(By.ID, "confirm-yes").click()
    wait_for(driver, lambda d: all(row_state(d, i) == "killed" for i in ids), "both killed", 30)
    wait_for(driver, lambda d: d.find_element(By.ID, "hold-banner").is_displayed(), "hold banner")
    driver.save_screenshot(str(ARTIFACTS / "dashboard-killed-all.png"))
    # lift the hold so later tests (and the system) can run tasks again
    admin = {"Authorization": f"Bearer {system.tokens['MOSAIC_ADMIN_TOKEN']}"}
    httpx.post(f"{system.gateway_url}/agents/resume", headers=admin, timeout=10)


def test_invalid_token_is_refused(driver: Any, system: Supervisor) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{system.gateway_url}/")
    driver.find_element(By.ID, "login-token").send_keys("not-a-token")
    driver.find_element(By.ID, "login-submit").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "login-error").is_displayed(), "the error")
    assert "not valid" in driver.find_element(By.ID, "login-error").text
    assert not driver.find_element(By.ID, "board").is_displayed()


def test_a_queued_merge_shows_its_position_then_its_merged_range(
    driver: Any, system: Supervisor, remote_repo: Path, unique: str
) -> None:
    """Another spawner's agent holds the repository's merge queue and then dies (its
    lease runs out): the waiting agent's row shows "merge queue #2", then, once the
    dead holder's lease expired and its merge landed, the merged range."""
    import asyncio

    from selenium.webdriver.common.by import By

    from services.spawner.mergequeue import MergeQueue
    from shared.store import StateStore

    async def dead_holder() -> None:
        from redis.asyncio import Redis

        redis = Redis.from_url(system.valkey_url)
        try:
            queue = MergeQueue(StateStore(redis), lease_s=8.0)
            await queue.join(queue.queue_key(str(remote_repo), "main"), f"gone-{unique}")
        finally:
            await redis.aclose()

    sign_in(driver, system, system.tokens["MOSAIC_API_TOKEN"])
    asyncio.run(dead_holder())
    body = slow_task(remote_repo, f"queued-{unique}", sleeps=0)
    body["options"]["merge"] = "queue"
    agent = spawn(system, body)
    note = f'tr[data-agent-id="{agent}"] .merge-queue'
    wait_for(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, note).text == "merge queue #2",
        "the queue position",
    )
    assert driver.find_element(By.CSS_SELECTOR, note).get_attribute("data-position") == "2"
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "dashboard-merge-queue.png"))
    merged = f'tr[data-agent-id="{agent}"] .merged'
    wait_for(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, merged).text.startswith("merged "),
        "the merged range",
        timeout=90,
    )
    wait_for(driver, lambda d: row_state(d, agent) == "completed", "the agent to complete")
    assert not driver.find_elements(By.CSS_SELECTOR, note)
