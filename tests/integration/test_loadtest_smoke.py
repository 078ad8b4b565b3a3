"""The load-test suite's CI smoke: 10 agents end to end; fails only on errors or loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_smoke_scenario_runs_ten_agents_without_errors_or_loss(tmp_path: Path) -> None:
    assert main(["smoke", "--out", str(tmp_path), "--sandbox", "bwrap"]) == 0
    (result_file,) = tmp_path.glob("*/smoke.json")
    result = json.loads(result_file.read_text())
    assert result["completed"] == 10
    assert result["lost"] == 0
    assert result["spawn_latency"]["count"] == 10
    assert "spawner" in result["resources"]["processes"]
    assert list(tmp_path.glob("*/smoke.png"))


def test_precheck_scenario_measures_checks_beside_their_floor(tmp_path: Path) -> None:
    assert main(["precheck", "--agents", "2", "--out", str(tmp_path)]) == 0
    (result_file,) = tmp_path.glob("*/precheck.json")
    result = json.loads(result_file.read_text())
    assert result["errors"] == []  # every check of the runnable task passed
    assert result["check"]["count"] == 10
    assert result["floor_get_hold"]["count"] == 10
    assert result["check_parallel_16"]["count"] == 10


def test_dispatch_measures_the_accept_path_alone_beside_the_bare_endpoint(
    tmp_path: Path,
) -> None:
    """A few no-op agents: the dispatch figures, then as many spawns again with intake
    held, beside the bare endpoint measured the same way."""
    assert main(["dispatch", "--agents", "5", "--out", str(tmp_path), "--sandbox", "bwrap"]) == 0
    (result_file,) = tmp_path.glob("*/dispatch.json")
    result = json.loads(result_file.read_text())
    assert (result["started"], result["failed"]) == (5, 0)
    assert result["accept_alone"]["accepted"] == 5
    assert result["accept_alone"]["errors"] == []
    assert result["accept_alone"]["per_second"] > 0
    assert result["accept_alone_over_bare"].endswith("x")
    assert result["machine_cpu"]["busy_cpu_seconds"] > 0
