"""A spawner SIGKILLed while a bwrap command is being started leaves nothing of it
running (the chaos suite's kill-all found one agent's sandbox alive under init for its
whole command: bwrap's own ``--die-with-parent`` is set too late to cover that moment).

The helper below plays the spawner in a process of its own. It widens the moment
between ``fork`` and bwrap's own setting (a preexec step that sleeps), so the test hits
it every time; the control run, with the guard taken out, shows the sandbox would
survive without it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.sandbox.conftest import require_bwrap

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HELPER = """
import asyncio, sys, time
from pathlib import Path
from shared.sandbox import processes
from shared.sandbox.base import SandboxSpec
from shared.sandbox.bwrap import BwrapSandboxFactory
from shared.sandbox.settings import SandboxSettings

real_rlimits = processes.rlimit_setter

def widened(limits, join=None):
    apply = real_rlimits(limits, join)
    def slow():
        apply()
        time.sleep(2.0)  # the spawner dies in here, before bwrap runs
    return slow

processes.rlimit_setter = widened
if sys.argv[3] == "unguarded":
    processes.parent_death_guard = lambda: (lambda: None)

async def main():
    settings = SandboxSettings(sandbox="bwrap")
    box = await BwrapSandboxFactory(settings).create(
        SandboxSpec(agent_id="deathtest", task_id="t", worktree=Path(sys.argv[1]))
    )
    print("starting", flush=True)
    await box.exec(sys.argv[2], timeout=60)

asyncio.run(main())
"""


def processes_naming(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def kill_spawner_while_starting(tmp_path: Path, mode: str) -> list[int]:
    """Start the helper, SIGKILL it inside the widened moment, and return what is left
    of its command once bwrap would have been running for a while."""
    marker = f"death-{uuid.uuid4().hex}"
    worktree = tmp_path / mode
    worktree.mkdir()
    root = Path(__file__).resolve().parents[3]
    helper = subprocess.Popen(
        [sys.executable, "-c", HELPER, str(worktree), f"sleep 300; echo {marker}", mode],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert helper.stdout is not None
    assert helper.stdout.readline().strip() == "starting"
    time.sleep(0.5)  # the command's child is in its preexec steps now
    helper.send_signal(signal.SIGKILL)
    helper.wait()
    time.sleep(3.0)  # past the widened moment: bwrap would run by now
    return processes_naming(marker)


async def test_a_spawner_killed_while_a_command_starts_leaves_nothing(tmp_path: Path) -> None:
    await require_bwrap()
    assert kill_spawner_while_starting(tmp_path, "guarded") == []


async def test_without_the_guard_the_sandbox_would_outlive_its_spawner(tmp_path: Path) -> None:
    await require_bwrap()
    left = kill_spawner_while_starting(tmp_path, "unguarded")
    try:
        assert left, "the control run left nothing: the test above could not fail"
    finally:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
