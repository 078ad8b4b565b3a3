"""``mosaic demo``: three real tasks through the whole system, offline.

It makes a small repository with a bare "remote" under the data dir, starts the
embedded system, submits three tasks (scripted provider: deterministic edits), follows
them until they end, prints the branches pushed to the remote, and stops everything.

The provider is chosen here, by name (``MOSAIC_PROVIDER=scripted``): nothing falls back
to it. The sandbox is the default one (``MOSAIC_SANDBOX=auto``: docker when a daemon and
the image are there, else bwrap), or whatever ``MOSAIC_SANDBOX`` says; the demo prints
which it got, and stops with the reason when no spawner can run agents.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from mosaic.spawners import any_ready, describe
from mosaic.supervisor import Supervisor, SystemConfig, pick_gateway_port

FINAL = {"completed", "failed", "killed"}
DEMO_PROVIDER = "scripted"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


DEMO_TEST = """\
import unittest

from calc import add


class AddTest(unittest.TestCase):
    def test_add(self) -> None:
        self.assertEqual(add(2, 3), 5)
"""
DEMO_GATES = """\
# The demo's tests use the standard library only, so they run in any sandbox (the
# default sandbox image, or the host's python3 under bwrap) with nothing installed.
detect = false

[gates]
tests = "python3 -m unittest discover -q"
lint = false
"""


def make_demo_repository(root: Path) -> Path:
    """A bare remote with a tiny Python project on ``main``; returns the remote's path."""
    remote = root / "remote.git"
    seed = root / "seed"
    if remote.exists():
        has_gates = subprocess.run(
            ["git", "cat-file", "-e", "main:.mosaic/gates.toml"],
            cwd=remote,
            check=False,
            capture_output=True,
        )
        if has_gates.returncode == 0:
            return remote
        shutil.rmtree(remote)  # made by an older demo, whose tests gate cannot run now
        shutil.rmtree(seed, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(root, "init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("# Demo calculator\n\nA tiny project for Mosaic's demo.\n")
    (seed / "calc.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    (seed / "test_calc.py").write_text(DEMO_TEST)
    (seed / ".mosaic").mkdir()
    (seed / ".mosaic" / "gates.toml").write_text(DEMO_GATES)
    _git(seed, "add", "-A")
    _git(
        seed,
        "-c",
        "user.name=Mosaic Demo",
        "-c",
        "user.email=demo@mosaic.invalid",
        "commit",
        "-q",
        "-m",
        "Initial demo project",
    )
    _git(seed, "push", "-q", str(remote), "main")
    return remote


def demo_tasks(remote: Path, run_id: str) -> list[dict[str, Any]]:
    """Three tasks with scripted plans: real edits through the agent's tools."""

    def task(n: int, items: list[str], plan: list[dict[str, Any]], priority: int) -> dict[str, Any]:
        return {
            "taskId": f"demo-{run_id}-{n}",
            "agentType": "worker",
            "context": {"repository": str(remote), "branch": "main", "workItems": items},
            "options": {"timeout": 120, "maxRetries": 1, "plan": plan},
            "priority": priority,
            "gateProfile": "minimal",
        }

    return [
        task(
            1,
            ["Add a subtract function to calc.py"],
            [
                {"tool": "read_file", "input": {"path": "calc.py"}},
                {
                    "tool": "edit_file",
                    "input": {
                        "path": "calc.py",
                        "old": "    return a + b\n",
                        "new": (
                            "    return a + b\n\n\n"
                            "def subtract(a: int, b: int) -> int:\n    return a - b\n"
                        ),
                    },
                },
                {"tool": "finish", "input": {"summary": "Added subtract()."}},
            ],
            1,
        ),
        task(
            2,
            ["Document the calculator's functions in the README"],
            [
                {
                    "tool": "edit_file",
                    "input": {
                        "path": "README.md",
                        "old": "A tiny project",
                        "new": "Functions: `add(a, b)`.\n\nA tiny project",
                    },
                },
                {"tool": "finish", "input": {"summary": "Documented the API."}},
            ],
            5,
        ),
        task(
            3,
            ["Add a unit test for add() with negative numbers"],
            [
                {
                    "tool": "write_file",
                    "input": {
                        "path": "test_negative.py",
                        "content": (
                            "import unittest\n\nfrom calc import add\n\n\n"
                            "class NegativeTest(unittest.TestCase):\n"
                            "    def test_negative(self) -> None:\n"
                            "        self.assertEqual(add(-2, -3), -5)\n"
                        ),
                    },
                },
                {"tool": "run_command", "input": {"command": "python3 -m unittest discover -q"}},
                {"tool": "finish", "input": {"summary": "Added a test."}},
            ],
            3,
        ),
    ]


def run_demo(home: Path, timeout: float = 180.0, port: int | None = None) -> int:
    """Run the demo end to end; 0 when all three tasks completed with pushed branches.

    ``port``: the gateway's (default 3001 when free, else any free one)."""
    started = time.monotonic()
    remote = make_demo_repository(home / "demo")
    config = SystemConfig(
        home=home, gateway_port=pick_gateway_port(port), env={"MOSAIC_PROVIDER": DEMO_PROVIDER}
    )
    print(f"Demo repository: {remote}")
    print(f"Provider: {DEMO_PROVIDER} (chosen by the demo: no model is called)")
    with Supervisor(config) as system:
        print(f"System up in {time.monotonic() - started:.1f}s; gateway {system.gateway_url}")
        health = system.health()
        for line in describe(health):
            print(f"  {line}")
        if not any_ready(health):
            print("Demo FAILED: no spawner can run agents (see above).")
            return 1
        headers = {"Authorization": f"Bearer {system.tokens['MOSAIC_API_TOKEN']}"}
        run_id = time.strftime("%Y%m%d-%H%M%S")
        with httpx.Client(base_url=system.gateway_url, headers=headers, timeout=10) as http:
            agents: dict[str, str] = {}
            for body in demo_tasks(remote, run_id):
                answer = http.post("/agents/spawn", json=body)
                answer.raise_for_status()
                agents[answer.json()["agentId"]] = body["taskId"]
                agent_id = answer.json()["agentId"]
                print(f"  submitted {body['taskId']} (priority {body['priority']}) -> {agent_id}")
            records = _follow(http, agents, timeout)
    print()
    ok = True
    for record in records:
        line = f"  {record['taskId']}: {record['state']}"
        if record.get("sandbox"):
            line += f" in {record['sandbox']} ({record.get('environment')})"
        if record.get("pushedBranch"):
            line += f", pushed {record['pushedBranch']} @ {str(record.get('pushedCommit'))[:10]}"
        if record.get("error"):
            line += f", error: {record['error']}"
            ok = False
        ok = ok and record["state"] == "completed" and bool(record.get("pushedBranch"))
        print(line)
    print(f"\nBranches on the remote ({remote}):")
    for line in _git(remote, "branch", "--list", "mosaic/*", "-v").splitlines():
        print(f"  {line.strip()}")
    print(f"\nDemo {'completed' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s.")
    return 0 if ok else 1


def _follow(http: httpx.Client, agents: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    records: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for agent_id in agents:
            record = http.get(f"/agents/{agent_id}/status").json()
            records[agent_id] = record
            shown = f"{record['state']}/{record['taskState']}"
            if last.get(agent_id) != shown:
                last[agent_id] = shown
                print(f"  {record['taskId']}: {shown}")
        if all(r["state"] in FINAL for r in records.values()):
            break
        time.sleep(0.2)
    return list(records.values())
