"""``mosaic dispatch`` run as a real process against the embedded system (NATS, Valkey
and the five services as processes; bwrap sandboxes, the scripted provider): a batch
with valid and invalid tasks queues only the valid ones, prints why each other one was
refused, waits for the queued agents, and exits non-zero. Skipped, naming why, where
bwrap cannot run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from tests.conftest import git
from tests.integration.sandbox.conftest import require_bwrap
from tests.systems import operator_http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
PLAN = [
    {"tool": "write_file", "input": {"path": "notes.txt", "content": "dispatched\n"}},
    {"tool": "finish", "input": {"summary": "wrote notes.txt"}},
]


@pytest.fixture(scope="module")
async def bwrap_runs() -> None:
    await require_bwrap()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, bwrap_runs: None) -> Iterator[Supervisor]:
    config = SystemConfig(
        home=tmp_path_factory.mktemp("dispatch-home"),
        gateway_port=free_port(),
        env={"MOSAIC_PROVIDER": "scripted", "MOSAIC_SANDBOX": "bwrap", "YOLO_MODE": "false"},
    )
    with Supervisor(config) as supervisor:
        yield supervisor


def mosaic(system: Supervisor, *argv: str) -> subprocess.CompletedProcess[str]:
    """The ``mosaic`` CLI as a separate process, as an operator runs it (no TTY)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MOSAIC_TOKEN", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mosaic.cli",
            *argv,
            "--url",
            system.gateway_url,
            "--token",
            system.tokens["MOSAIC_API_TOKEN"],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )


def broken_gates_branch(remote: Path, tmp: Path) -> None:
    clone = tmp / "edit"
    git(tmp, "clone", "-q", str(remote), str(clone))
    git(clone, "checkout", "-q", "-b", "broken-gates")
    (clone / ".mosaic" / "gates.toml").write_text("[gates]\ntests = 42\n")
    git(clone, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-q", "-am", "break")
    git(clone, "push", "-q", "origin", "broken-gates")


def agents(system: Supervisor) -> list[dict[str, Any]]:
    with operator_http(system) as http:
        listed: list[dict[str, Any]] = http.get("/agents", params={"limit": 500}).json()["agents"]
    return listed


def test_dispatch_queues_only_the_valid_tasks_and_says_why_the_others_were_refused(
    system: Supervisor, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    broken_gates_branch(remote_repo, tmp_path)
    batch = {
        "defaults": {
            "agentType": "worker",
            "context": {"repository": str(remote_repo), "branch": "main"},
            "options": {"timeout": 120, "maxRetries": 1, "plan": PLAN},
            "gateProfile": "minimal",
        },
        "tasks": [
            {"taskId": f"ok-1-{unique}", "context": {"workItems": ["Write notes.txt"]}},
            {
                "taskId": f"no-branch-{unique}",
                "context": {"branch": "release/9", "workItems": ["x"]},
            },
            {
                "taskId": f"bad-gates-{unique}",
                "context": {"branch": "broken-gates", "workItems": ["x"]},
            },
            {
                "taskId": f"bad-priority-{unique}",
                "priority": "high",
                "context": {"workItems": ["x"]},
            },
            {
                "taskId": f"no-repo-{unique}",
                "context": {"repository": str(tmp_path / "gone.git"), "workItems": ["x"]},
            },
            {"context": {"workItems": ["Write notes.txt too"]}},  # gets a batch-… id
        ],
    }
    path = tmp_path / "batch.yaml"
    path.write_text(yaml.safe_dump(batch))

    done = mosaic(system, "dispatch", str(path), "--wait", "--wait-timeout", "180", "--poll", "0.5")

    out = done.stdout
    refused = {  # each refused task's first line of why
        block.split(":\n", 1)[0]: block.split(":\n", 1)[1].splitlines()[0].strip()
        for block in out.split("  refused ")[1:]
    }
    assert done.returncode == 1, (out, done.stderr)
    assert "queued 2, refused 4" in out
    assert refused[f"no-branch-{unique}"].startswith(
        "branch: the repository has no branch 'release/9'"
    )
    assert refused[f"bad-gates-{unique}"].startswith(
        "gates: .mosaic/gates.toml is invalid: gates.tests"
    )
    assert refused[f"bad-priority-{unique}"].startswith("422 ")
    assert refused[f"bad-priority-{unique}"].endswith("(field: priority)")
    gone = tmp_path / "gone.git"
    assert refused[f"no-repo-{unique}"].startswith(f"repository: no repository at {gone}")
    assert len(refused) == 4
    assert "completed 2, failed 0, killed 0, still running 0" in out
    # no TTY: one progress line per task, then per finished agent, on stderr
    assert done.stderr.count("dispatch ") == 6
    assert done.stderr.count("wait ") == 2
    listed = {a["taskId"]: a for a in agents(system)}
    assert f"ok-1-{unique}" in listed
    assert not any(unique in t and not t.startswith("ok-1") for t in listed)
    assert len([t for t in listed if t.startswith("batch-")]) == 1
    assert {listed[f"ok-1-{unique}"]["state"]} == {"completed"}

    # the same file again: nothing queued twice (the ids are known), exit 1, JSON answer
    again = mosaic(system, "dispatch", str(path), "--json")
    assert again.returncode == 1
    answer = json.loads(again.stdout)
    assert answer["queued"] == 0
    assert answer["refused"] == 6
    first = answer["tasks"][0]
    assert first["taskId"] == f"ok-1-{unique}"
    assert first["queued"] is False
    assert [c["name"] for c in first["precheck"]["checks"] if not c["ok"]] == ["task"]
    assert len(agents(system)) == len(listed)
    print(out, done.stderr, sep="\n")  # shown with -s: the summary as an operator sees it


def test_dispatch_of_a_valid_json_list_exits_zero_and_a_bad_file_exits_two(
    system: Supervisor, remote_repo: Path, tmp_path: Path, unique: str
) -> None:
    tasks = [
        {
            "taskId": f"json-{n}-{unique}",
            "agentType": "worker",
            "context": {"repository": str(remote_repo), "workItems": [f"task {n}"]},
            "options": {"plan": PLAN, "maxRetries": 1},
            "gateProfile": "minimal",
        }
        for n in (1, 2)
    ]
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(tasks))
    done = mosaic(system, "dispatch", str(path))
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.strip() == "queued 2, refused 0"

    broken = tmp_path / "broken.yaml"
    broken.write_text("tasks: [unclosed\n")
    bad = mosaic(system, "dispatch", str(broken))
    assert bad.returncode == 2
    assert f"{broken} is not valid YAML" in bad.stderr
    (tmp_path / "empty.yaml").write_text("tasks: []\n")
    empty = mosaic(system, "dispatch", str(tmp_path / "empty.yaml"))
    assert empty.returncode == 2
    assert "expected a non-empty list of tasks" in empty.stderr
