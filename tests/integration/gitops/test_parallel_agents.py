"""Agents on one repository do not wait for each other in gitops (issue 20).

Each agent's work holds only that agent's lock; one fetch serves every caller that was
waiting when it began. Real git, a real bare remote.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from services.gitops import worktrees
from services.gitops.repos import RepoCache
from tests.integration.gitops.conftest import rm_req, wt_req

pytestmark = pytest.mark.integration


async def test_one_agents_long_work_does_not_hold_up_another_agent(
    cache: RepoCache, remote_repo: Path
) -> None:
    url = str(remote_repo)
    await worktrees.create_worktree(cache, wt_req(remote_repo, "warm"))  # the clone
    release = threading.Event()
    entered = threading.Event()

    def slow_work() -> None:
        entered.set()
        assert release.wait(20), "never released"

    held = asyncio.ensure_future(cache.run_for_agent(url, "busy", slow_work))
    try:
        assert await asyncio.to_thread(entered.wait, 10)
        # another agent creates and removes its repository while "busy" holds its lock
        ready = await asyncio.wait_for(
            worktrees.create_worktree(cache, wt_req(remote_repo, "other")), 15
        )
        assert ready.path
        assert Path(ready.path).is_dir()
        removed = await asyncio.wait_for(
            worktrees.remove_worktree(cache, rm_req(remote_repo, "other")), 15
        )
        assert removed.removed
        assert not held.done()
    finally:
        release.set()
        await held


async def test_one_agents_requests_still_run_one_at_a_time(
    cache: RepoCache, remote_repo: Path
) -> None:
    url = str(remote_repo)
    active: list[int] = []
    most = 0

    def work() -> None:
        nonlocal most
        active.append(1)
        most = max(most, len(active))
        threading.Event().wait(0.05)
        active.pop()

    await asyncio.gather(*(cache.run_for_agent(url, "same", work) for _ in range(5)))
    assert most == 1
    assert not cache._locks, "a lock nobody holds or awaits is dropped"


async def test_callers_waiting_on_a_fetch_share_the_next_one(
    cache: RepoCache, remote_repo: Path
) -> None:
    url = str(remote_repo)
    await asyncio.to_thread(cache.ensure, url, "main")
    fetches = 0
    real_fetch = cache._fetch

    def counted(url: str, branch: str | None) -> None:
        nonlocal fetches
        fetches += 1
        real_fetch(url, branch)

    cache._fetch = counted  # type: ignore[method-assign]
    lock = cache._remote_lock(url)
    lock.acquire()  # as if a fetch were running: every caller below asks while it runs
    try:
        callers = asyncio.gather(*(asyncio.to_thread(cache.fetch, url, "main") for _ in range(5)))
        await asyncio.sleep(2)  # all five have asked and wait for the lock
    finally:
        lock.release()
    await callers
    assert fetches == 1, "the first fetch after they asked serves all five"
    assert cache.has_ref(url, "refs/remotes/origin/main")
