"""The conflict loop of issue 17 through the whole system, for any sandbox backend.

The base moves under a running agent: when the agent asks the model for its second
turn (it has edited ``app.py`` by then), a human pushes a change of the same line to
``main``. The agent finishes, its push conflicts, and the spawner points the agent's
``origin/main`` at the new base before telling it; the agent rebases (or merges) in its
sandbox, resolves ``app.py``, ``git add``, continues, and finishes again; its pushed
branch holds both changes. The model is the real Anthropic SDK against the fake
Messages API; everything else is real (five processes, NATS, Valkey, git, the sandbox).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import git
from tests.fakes.messages_api import FakeMessagesAPI, FakeReply, RecordedRequest, reply, tool_use
from tests.systems import wait_final

IDENTITY = "Mosaic Agent <agent@mosaic.invalid>"
"""The configured agent identity (``GitSettings``' default): on every commit it pushes."""
AGENT_LINE = "    return a + b  # agent\n"
UPSTREAM_LINE = "    return b + a  # upstream\n"
RESOLVED = "def add(a, b):\n    return b + a  # upstream, agent\n"

REBASE = (
    "git rebase origin/main; git diff --name-only --diff-filter=U",
    "git add app.py && GIT_EDITOR=true git rebase --continue && git log --format=%s -3",
)
MERGE = (
    "git merge origin/main; git diff --name-only --diff-filter=U",
    "git add app.py && git commit -q --no-edit && git log --format=%s -3",
)


def push_upstream(remote: Path, scratch: Path) -> str:
    """A human's commit on ``main`` that changes the line the agent changes."""
    clone = scratch / f"human-{time.monotonic_ns()}"
    git(scratch, "clone", "-q", str(remote), str(clone))
    (clone / "app.py").write_text("def add(a, b):\n" + UPSTREAM_LINE)
    git(clone, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-qam", "upstream change")
    git(clone, "push", "-q", "origin", "main")
    return git(clone, "rev-parse", "HEAD")


def run(command: str) -> dict[str, Any]:
    return tool_use("run_command", {"command": command, "timeout": 60})


def script(remote: Path, scratch: Path, steps: tuple[str, str]) -> list[Any]:
    """The model's answers: edit, (the base moves) finish, resolve, finish again."""
    start, finish_resolution = steps

    def base_moves(_request: RecordedRequest) -> FakeReply:
        push_upstream(remote, scratch)
        return reply(tool_use("finish", {"summary": "changed add"}))

    return [
        reply(
            tool_use(
                "edit_file", {"path": "app.py", "old": "    return a + b\n", "new": AGENT_LINE}
            )
        ),
        base_moves,
        reply(run(start)),
        reply(tool_use("write_file", {"path": "app.py", "content": RESOLVED})),
        reply(run(finish_resolution)),
        reply(tool_use("finish", {"summary": "resolved the conflict with main"})),
    ]


def spawn(http: httpx.Client, remote: Path, task_id: str) -> str:
    answer = http.post(
        "/agents/spawn",
        json={
            "taskId": task_id,
            "agentType": "worker",
            "gateProfile": "minimal",
            "context": {
                "repository": str(remote),
                "branch": "main",
                "workItems": ["mark the sum in add as the agent's"],
            },
            "options": {"maxRetries": 0, "timeout": 600},
        },
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["agentId"])


def resolve_conflict(
    http: httpx.Client,
    model: FakeMessagesAPI,
    remote: Path,
    scratch: Path,
    task_id: str,
    steps: tuple[str, str],
    check: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Run the loop; check the pushed branch holds both changes; return the record."""
    key = model.api_key
    model.reset()
    model.api_key = key
    model.enqueue(*script(remote, scratch, steps))
    agent_id = spawn(http, remote, task_id)
    record = wait_final(http, agent_id, timeout=600)
    outputs = model.tool_outputs()
    assert record["state"] == "completed", (record.get("error"), outputs)
    told = [o for o in outputs if "Merge conflict with origin/main in: app.py" in o]
    assert told, outputs
    assert "origin/main in your repository is now the updated base" in told[0]
    assert "app.py" in outputs[3], outputs[3]  # the conflict, seen in the sandbox
    branch = record["pushedBranch"]
    assert branch == f"mosaic/agent-{agent_id}"
    assert git(remote, "show", f"{branch}:app.py") == RESOLVED.strip()
    upstream = git(remote, "rev-parse", "main")
    git(remote, "merge-base", "--is-ancestor", upstream, branch)  # both changes: no loss
    identities = git(remote, "log", "--format=%an <%ae>|%cn <%ce>", f"main..{branch}")
    assert set(identities.replace("|", "\n").splitlines()) == {IDENTITY}, identities
    if check is not None:
        check(branch, upstream)
    return record
