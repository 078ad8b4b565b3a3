"""A spawner SIGKILLed at any moment of a bwrap command leaves nothing of it running.

Two moments escaped bwrap's own ``--die-with-parent``: the chaos suite's kill-all found
one agent's sandbox alive under init for its whole command (the spawner died between
``fork`` and bwrap running: the parent-death guard covers it), and CI found a
namespace's pid 1 alive with the command's children (the spawner died while bwrap was
forking pid 1, which sets its parent-death signal only afterwards: the lifeline covers
it, ``shared.sandbox.bwrap.LIFELINE_WATCH``).

The helper below plays the spawner in a process of its own, with some of the
mechanisms taken out. The first moment is widened (a preexec step that sleeps), so the
test hits it every time; the second stands in as bwrap without ``--die-with-parent``
(pid 1 then never gets the signal, as when its parent died first). Each control run,
with every mechanism for its moment taken out, shows the sandbox would survive.
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

from shared.sandbox import bwrap

real_rlimits = processes.rlimit_setter
real_view = bwrap.view_args
moment, removed = sys.argv[3], sys.argv[4].split(",")

def widened(limits, join=None):
    apply = real_rlimits(limits, join)
    def slow():
        apply()
        time.sleep(2.0)  # the spawner dies in here, before bwrap runs
    return slow

if moment == "starting":
    processes.rlimit_setter = widened
if "guard" in removed:
    processes.parent_death_guard = lambda: (lambda: None)
if "lifeline" in removed:
    bwrap.LIFELINE_WATCH = 'exec /bin/sh -c "$1" </dev/null'
if "die-with-parent" in removed:
    bwrap.view_args = lambda *a, **k: [x for x in real_view(*a, **k) if x != "--die-with-parent"]

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


def kill_spawner(tmp_path: Path, moment: str, *removed: str) -> list[int]:
    """Start the helper with ``removed`` taken out, SIGKILL it at ``moment`` (inside the
    widened start, or with the command running), and return what is left of its command
    once bwrap would have been running for a while."""
    marker = f"death-{uuid.uuid4().hex}"
    worktree = tmp_path / "wt"
    worktree.mkdir()
    root = Path(__file__).resolve().parents[3]
    command = f"sleep 300; echo {marker}"
    helper = subprocess.Popen(
        [sys.executable, "-c", HELPER, str(worktree), command, moment, ",".join(removed)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert helper.stdout is not None
    assert helper.stdout.readline().strip() == "starting"
    if moment == "starting":
        time.sleep(0.5)  # the command's child is in its preexec steps now
    else:
        running = f"/bin/sh\0-c\0{command}\0".encode()  # the command's own shell
        for _ in range(500):
            if any(cmdline(pid) == running for pid in processes_naming(marker)):
                break
            time.sleep(0.01)
        else:
            helper.kill()
            raise AssertionError("the command never ran")
    helper.send_signal(signal.SIGKILL)
    helper.wait()
    time.sleep(3.0)  # past the widened moment: bwrap would run by now
    return processes_naming(marker)


def cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    return b""


def survived(left: list[int]) -> bool:
    """True if the control run left processes behind (which are then killed)."""
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return bool(left)


async def test_a_spawner_killed_while_a_command_starts_leaves_nothing(tmp_path: Path) -> None:
    await require_bwrap()
    assert kill_spawner(tmp_path, "starting") == []


@pytest.mark.parametrize("kept", ["guard", "lifeline"])
async def test_either_the_guard_or_the_lifeline_alone_covers_the_start(
    tmp_path: Path, kept: str
) -> None:
    await require_bwrap()
    removed = {"guard", "lifeline"} - {kept}
    assert kill_spawner(tmp_path, "starting", *removed) == []


async def test_without_guard_and_lifeline_the_sandbox_would_outlive_its_spawner(
    tmp_path: Path,
) -> None:
    await require_bwrap()
    left = kill_spawner(tmp_path, "starting", "guard", "lifeline")
    assert survived(left), "the control run left nothing: the tests above could not fail"


async def test_a_pid_1_without_the_parent_death_signal_still_dies_with_the_spawner(
    tmp_path: Path,
) -> None:
    await require_bwrap()
    assert kill_spawner(tmp_path, "running", "die-with-parent") == []


async def test_without_the_lifeline_that_pid_1_would_outlive_its_spawner(tmp_path: Path) -> None:
    await require_bwrap()
    left = kill_spawner(tmp_path, "running", "die-with-parent", "lifeline")
    assert survived(left), "the control run left nothing: the test above could not fail"
