"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by
Selenium against the whole system started as ``mosaic up`` starts it.

Outside CI the tests skip, naming what is missing; under ``CI=true`` they must run
(``scripts/ensure-chromium.sh`` installs the browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _missing() -> str | None:
    for name, path in (("chromium", CHROMIUM), ("chromedriver (chromium-driver)", CHROMEDRIVER)):
        if not os.access(path, os.X_OK):
            return f"{name} is not installed (run scripts/ensure-chromium.sh as root)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def browser_available() -> None:
    missing = _missing()
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {missing}")
    pytest.skip(missing)


@pytest.fixture(scope="module")
def system(
    browser_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("home"),
        gateway_port=free_port(),
        env={"MOSAIC_PROVIDER": "scripted", "MOSAIC_SANDBOX": "none", "TASK_ACK_WAIT_S": "5"},
    )
    with Supervisor(config) as supervisor:
        yield supervisor


@pytest.fixture
def driver(browser_available: None, tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
