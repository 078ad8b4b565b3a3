"""The kill load test's watch on bwrap sandboxes (``loadtests.scenarios.bwrap_processes``):
it must see a running sandbox by its agent's id, or "gone in 0.17 s" would mean nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from loadtests.scenarios import bwrap_kill_floor, bwrap_processes, sandbox_watch, until_gone
from shared.sandbox.base import SandboxSpec
from shared.sandbox.bwrap import BwrapSandboxFactory
from shared.sandbox.settings import SandboxSettings
from tests.integration.sandbox.conftest import require_bwrap

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_a_running_sandbox_is_seen_by_its_agent_id_until_killed(tmp_path: Path) -> None:
    await require_bwrap()
    agent_id = f"agent-{uuid.uuid4().hex[:8]}"
    worktree = tmp_path / f"{agent_id}-task"  # gitops names an agent's repository so
    worktree.mkdir()
    box = await BwrapSandboxFactory(SandboxSettings()).create(
        SandboxSpec(agent_id=agent_id, task_id="task", worktree=worktree)
    )
    command = asyncio.create_task(box.exec("sleep 60", timeout=90))
    try:
        # the outer bwrap and the namespace's pid 1 both carry the path
        for _ in range(500):
            if len(bwrap_processes([agent_id])) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(bwrap_processes([agent_id])) == 2
        assert bwrap_processes(["agent-someone-else"]) == []
        async with sandbox_watch("bwrap", [agent_id]) as none_left:
            assert not none_left()
            box.kill_now()
            gone_at = await until_gone(none_left, 10)
        assert bwrap_processes([agent_id]) == []
        assert gone_at <= time.perf_counter()
        await asyncio.gather(command, return_exceptions=True)
    finally:
        await box.close()


async def test_the_kill_all_floor_kills_its_sandboxes_and_leaves_none() -> None:
    """``bwrap_kill_floor``: sandboxes each running a command, killed by a plain loop;
    it times until every command ended, and nothing of them is left after."""
    await require_bwrap()
    floor = await bwrap_kill_floor(3)
    assert floor["sandboxes"] == 3
    assert 0 < floor["seconds"] < 30
    assert bwrap_processes(["mosaic-kill-floor-"]) == []
