"""The chaos suite's CI smoke: a few faults of the main kinds on small workloads; every
check of ``python -m loadtests chaos`` must pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420), pytest.mark.serial]

SMOKE = "spawner,gitops,partition,kill-all"


def test_chaos_smoke_passes_every_check(tmp_path: Path) -> None:
    code = main(
        [
            "chaos",
            "--only",
            SMOKE,
            "--agents",
            "3",
            "--kills",
            "3",
            "--service-kills",
            "2",
            "--kill-every",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    (result_file,) = tmp_path.glob("*/chaos.json")
    result = json.loads(result_file.read_text())
    failed = [c for c in result["checks"] if c["passed"] is False]
    assert code == 0, failed
    assert set(result["figures"]) == set(SMOKE.split(","))
    (kills,) = [c for c in result["checks"] if c["name"] == "SIGKILLs of spawner mid-run"]
    assert kills["passed"], kills  # the faults really hit running agents
