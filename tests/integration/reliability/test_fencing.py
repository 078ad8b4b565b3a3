"""Fencing: once another spawner claimed the task, the old attempt writes nothing.

Real nats-server, Valkey, gitops service and git repositories; two spawner contexts
(each its own NATS connection). Spawner A runs attempt 1 for real (scripted plan, host
sandbox); while its agent runs, spawner B claims the same task as attempt 2, as it would
after JetStream redelivered the message of a spawner cut off from NATS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from services.spawner.agent_run import AgentRun, Verdict
from services.spawner.errors import StepFailedError
from services.spawner.kills import Running
from shared.errors import STALE_ATTEMPT, StaleAttemptError
from shared.messages.agents import AgentState, TaskState
from shared.messages.gitops import (
    CommitRequested,
    PushRequested,
    WorktreeRemoveRequested,
    WorktreeRequested,
)
from shared.messages.tasks import TaskQueued
from tests.conftest import git
from tests.integration.reliability.conftest import Spawner, queue_agent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _sleep_then_finish(seconds: int) -> list[dict[str, object]]:
    return [
        {"tool": "run_command", "input": {"command": f"sleep {seconds}", "timeout": 60}},
        {"tool": "write_file", "input": {"path": "stale.txt", "content": "from attempt 1\n"}},
        {"tool": "finish", "input": {"summary": "attempt 1 finished"}},
    ]


async def _run(spawner: Spawner, task: TaskQueued, attempt: int) -> Verdict:
    current = asyncio.current_task()
    assert current is not None
    running = Running(task.agent_id, task.request.task_id, current)
    return await AgentRun(spawner.ctx, task, running, attempt).execute()


async def _wait_state(spawner: Spawner, agent_id: str, state: AgentState) -> None:
    deadline = time.monotonic() + 30
    while (await spawner.ctx.tracker.store.require_agent(agent_id)).state != state:
        assert time.monotonic() < deadline, f"{agent_id} never reached {state}"
        await asyncio.sleep(0.05)


def _where(task: TaskQueued, attempt: int) -> dict[str, object]:
    return {
        "agent_id": task.agent_id,
        "task_id": task.request.task_id,
        "repository": task.request.context.repository,
        "base_branch": "main",
        "attempt": attempt,
    }


async def test_a_stale_attempt_is_stopped_and_its_writes_refused(
    make_spawner: Callable[..., Awaitable[Spawner]], remote_repo: Path
) -> None:
    a = await make_spawner("spawner-a")
    b = await make_spawner("spawner-b")
    store = a.ctx.tracker.store
    task = await queue_agent(store, remote_repo, "fence1", _sleep_then_finish(4))

    first = await a.worker._claim(task)
    assert first == 1
    run_a = asyncio.create_task(_run(a, task, first))
    await _wait_state(a, task.agent_id, AgentState.RUNNING)

    # B gets the redelivered message: the task is executing, so B starts attempt 2
    second = await b.worker._claim(task)
    assert second == 2
    ready = await b.ctx.gitops.create_worktree(WorktreeRequested(**_where(task, second)))
    assert ready.error is None
    assert ready.reused
    claimed = await store.require_agent(task.agent_id)
    events_at_claim = len(await store.events(task.agent_id))

    # A's agent wakes up: its first write is refused, so it stops and writes nothing
    assert await asyncio.wait_for(run_a, 30) is Verdict.LOST
    after = await store.require_agent(task.agent_id)
    assert after == claimed  # not completed, not failed, not pending: B's claim stands
    assert (after.attempts, after.task_state, after.spawner) == (
        2,
        TaskState.ASSIGNED,
        "spawner-b",
    )
    assert len(await store.events(task.agent_id)) == events_at_claim
    worktree = Path(ready.path or "")
    assert worktree.is_dir()  # A did not remove B's worktree
    assert not (worktree / "stale.txt").exists()

    # Every gitops write of attempt 1 is refused now; attempt 2's go through
    (worktree / "work.txt").write_text("from attempt 2\n")
    gitops = a.ctx.gitops
    stale_commit = await gitops.commit(CommitRequested(**_where(task, 1), message="stale"))
    assert stale_commit.error is not None
    assert stale_commit.error.code == STALE_ATTEMPT
    assert git(worktree, "status", "--porcelain")  # nothing was committed
    stale_push = await gitops.push(PushRequested(**_where(task, 1)))
    assert stale_push.error is not None
    assert stale_push.error.code == STALE_ATTEMPT
    stale_remove = await gitops.remove_worktree(WorktreeRemoveRequested(**_where(task, 1)))
    assert stale_remove.error is not None
    assert stale_remove.error.code == STALE_ATTEMPT
    assert worktree.is_dir()
    with pytest.raises(StepFailedError) as refused:
        await gitops.create_worktree(WorktreeRequested(**_where(task, 1)))
    assert refused.value.code == STALE_ATTEMPT

    with pytest.raises(StaleAttemptError):
        await a.ctx.tracker.transition(
            task.agent_id,
            task_id=task.request.task_id,
            agent=AgentState.COMPLETED,
            task=TaskState.COMPLETED,
            fence=1,
        )

    made = await b.ctx.gitops.commit(CommitRequested(**_where(task, 2), message="attempt 2"))
    assert made.error is None
    assert made.commit
    pushed = await b.ctx.gitops.push(PushRequested(**_where(task, 2)))
    assert pushed.error is None
    assert git(remote_repo, "rev-parse", "mosaic/agent-fence1") == made.commit
    removed = await b.ctx.gitops.remove_worktree(WorktreeRemoveRequested(**_where(task, 2)))
    assert removed.removed
