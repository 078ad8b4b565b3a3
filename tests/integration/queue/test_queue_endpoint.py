"""``GET /queue`` shows true counts while a run is in progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.queue.helpers import body, client, system, wait_all_final, write_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_queue_counts_waiting_by_priority_then_completed(tmp_path: Path, remote_repo: Path) -> None:
    with system(tmp_path / "home") as sup, client(sup) as http:
        sup.stop_service("spawner")
        ids = []
        for n, priority in enumerate([1, 1, 4, 9]):
            task = body(remote_repo, f"q-{n}", write_plan(f"q{n}"))
            task["priority"] = priority
            ids.append(http.post("/agents/spawn", json=task).json()["agentId"])
        stats = http.get("/queue").json()
        assert stats["waiting"] == 4
        assert stats["pending"] == 4
        waiting = {b["priority"]: b["waiting"] for b in stats["byPriority"]}
        assert (waiting[1], waiting[4], waiting[9], waiting[5]) == (2, 1, 1, 0)
        sup.start_service("spawner")
        wait_all_final(http, ids, timeout=60)
        stats = http.get("/queue").json()
        assert stats["waiting"] == 0
        assert stats["inFlight"] == 0
        assert stats["completed"] == 4
        assert stats["agentsByState"] == {"completed": 4}
