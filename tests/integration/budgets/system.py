"""What the budget system tests share: a five-service system on the fake Messages API,
a repository whose gates are cheap, and small HTTP helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from services.gitops.repos import RepoCache
from tests.conftest import git
from tests.fakes.messages_api import FakeMessagesAPI, RecordedRequest, tool_use

FINAL = {"completed", "failed", "killed"}
API_KEY = "sk-ant-test-budgets"
MODEL = "claude-sonnet-4-5"
"""Priced by the built-in table: $3 input, $15 output, $3.75 cache write, $0.30 cache
read per million tokens."""
GATES_TOML = (
    '[gates]\ntests = "true"\ntypecheck = false\nlint = false\ncoverage = false\nbuild = false\n'
)


@contextmanager
def running_system(home: Path, model: FakeMessagesAPI, **env: str) -> Iterator[Supervisor]:
    """The five services, agents as host processes, the model the fake API."""
    config = SystemConfig(
        home=home,
        gateway_port=free_port(),
        env={
            "MOSAIC_PROVIDER": "anthropic",
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": model.url,
            "ANTHROPIC_MODEL": MODEL,
            "MOSAIC_SANDBOX": "none",
            "TASK_ACK_WAIT_S": "10",
            "BUDGET_HOLD_POLL_S": "0.5",
            **env,
        },
    )
    with Supervisor(config) as supervisor:
        yield supervisor


def with_cheap_gates(remote: Path, work: Path) -> Path:
    """``remote`` with a ``.mosaic/gates.toml`` that only runs ``true`` as its tests."""
    clone = work / "gates-seed"
    git(work, "clone", "-q", str(remote), str(clone))
    (clone / ".mosaic").mkdir(exist_ok=True)
    (clone / ".mosaic" / "gates.toml").write_text(GATES_TOML)
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-qm", "cheap gates")
    git(clone, "push", "-q", "origin", "main")
    return remote


def client(system: Supervisor, admin: bool = False) -> httpx.Client:
    token = system.tokens["MOSAIC_ADMIN_TOKEN" if admin else "MOSAIC_API_TOKEN"]
    return httpx.Client(
        base_url=system.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
    )


def spawn_body(repo: Path, task_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": [f"Do {task_id}"]},
        "gateProfile": "minimal",
        **extra,
    }


def task_of(request: RecordedRequest) -> str:
    """The task id from a worker's first user message ("Task <id> for a worker agent.")."""
    first = request.messages[0]["content"]
    words = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)
    return words.split()[1]


def is_review(request: RecordedRequest) -> bool:
    """The gates' AI reviewer asks with a forced ``submit_review`` tool choice."""
    return "tool_choice" in request.body


def usage(i: int = 0, o: int = 0, w: int = 0, r: int = 0) -> dict[str, int]:
    """The ``usage`` block the fake API reports."""
    return {
        "input_tokens": i,
        "output_tokens": o,
        "cache_creation_input_tokens": w,
        "cache_read_input_tokens": r,
    }


def sonnet_usd(i: int = 0, o: int = 0, w: int = 0, r: int = 0) -> float:
    return (i * 3 + o * 15 + w * 3.75 + r * 0.3) / 1_000_000


def write(path: str, content: str) -> dict[str, Any]:
    return tool_use("write_file", {"path": path, "content": content})


def salvaged_file(home: Path, remote: Path, branch: str, path: str) -> str | None:
    """A file on a salvage branch of the gitops cache, or None if it is not there."""
    repo = home / "repos" / RepoCache.slug(str(remote))
    try:
        return git(repo, "show", f"{branch}:{path}")
    except Exception:
        return None
