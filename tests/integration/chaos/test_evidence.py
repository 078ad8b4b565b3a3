"""The chaos suite's own instruments, each shown to see what it claims to count: real git
remotes and caches, real processes, real TCP connections."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from loadtests.chaos.evidence import (
    enable_push_log,
    leftover_processes,
    leftovers,
    outcome,
    pushes_per_branch,
)
from loadtests.chaos.proxy import CuttableProxy
from tests.conftest import git

pytestmark = [pytest.mark.integration]


def _commit_and_push(work: Path, remote: Path, branch: str, message: str) -> None:
    git(
        work,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        message,
    )
    git(work, "push", "-q", str(remote), f"HEAD:refs/heads/{branch}")


def _record(agent_id: str, *states: str) -> dict[str, Any]:
    return {
        "agentId": agent_id,
        "state": states[-1],
        "attempts": 1,
        "events": [{"kind": "state", "state": s} for s in ("running", *states)],
    }


def test_a_second_push_to_an_agent_branch_is_counted(remote_repo: Path, tmp_path: Path) -> None:
    enable_push_log(remote_repo)
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(remote_repo), str(work))
    _commit_and_push(work, remote_repo, "mosaic/agent-a", "first")
    _commit_and_push(work, remote_repo, "mosaic/agent-a", "again")
    _commit_and_push(work, remote_repo, "mosaic/agent-b", "once")

    counts = pushes_per_branch(remote_repo)
    result = outcome([_record("a", "completed"), _record("b", "completed")], counts, 2, 11)

    assert counts == {"mosaic/agent-a": 2, "mosaic/agent-b": 1}
    assert result.pushed_twice == 1
    assert result.completed_with_push == 2
    assert result.doubled == ["a: pushed 2 times"]


def test_a_remote_that_logs_no_push_is_refused_not_read_as_once(
    remote_repo: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(remote_repo), str(work))
    _commit_and_push(work, remote_repo, "mosaic/agent-a", "first")

    with pytest.raises(RuntimeError, match="no reflog"):
        pushes_per_branch(remote_repo)


def test_an_agent_that_ended_twice_or_never_is_counted() -> None:
    records = [
        _record("twice", "completed", "completed"),
        _record("ok", "failed"),
        {"agentId": "stuck", "state": "running", "events": []},
    ]
    result = outcome(records, {}, accepted=4, max_attempts=3)  # one has no record at all

    assert (result.ended_twice, result.completed_twice) == (1, 1)
    assert result.lost == 2
    assert (result.completed, result.failed) == (1, 1)


def test_a_task_failed_with_attempts_left_is_told_from_one_that_used_them_up() -> None:
    early, spent = _record("early", "failed"), _record("spent", "failed")
    early |= {"attempts": 2, "error": "gates unavailable"}
    spent |= {"attempts": 3, "error": "its spawner stopped mid-run"}

    result = outcome([early, spent], {}, accepted=2, max_attempts=3)

    assert (result.failed, result.failed_exhausted) == (2, 1)
    assert result.failures == ["gates unavailable"]


def test_a_process_left_in_a_worktree_and_the_worktree_are_found(tmp_path: Path) -> None:
    worktree = tmp_path / "repos" / "r-1_worktrees" / "agent-x"
    worktree.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"], cwd=worktree)
    try:
        found = leftovers(tmp_path, set(), 0)
        assert [p.split(":")[0] for p in found.processes] == [str(sleeper.pid)]
        assert found.worktree_dirs == [str(worktree)]
        assert leftover_processes(tmp_path, set(), frozenset({sleeper.pid})) != []
        assert leftover_processes(tmp_path, {sleeper.pid}) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    assert leftover_processes(tmp_path, set()) == []


def test_a_process_naming_home_but_no_worktree_is_no_agents(tmp_path: Path) -> None:
    """Like a spawner's start-up probe, which names the home only to hide it."""
    hider = subprocess.Popen(["sh", "-c", "sleep 60", "--tmpfs", str(tmp_path)])
    try:
        assert leftover_processes(tmp_path, set()) == []
    finally:
        hider.kill()
        hider.wait()


def test_a_corrupt_cache_fails_fsck(remote_repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "repos" / "remote-1"
    git(tmp_path, "clone", "-q", "--bare", str(remote_repo), str(cache))
    assert leftovers(tmp_path, set(), 0).fsck_errors == []
    tree = git(cache, "rev-parse", "HEAD^{tree}")
    (cache / "objects" / tree[:2] / tree[2:]).unlink()

    assert leftovers(tmp_path, set(), 0).fsck_errors != []


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server, server.getsockname()[1]


def _echo_once(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        while data := conn.recv(1024):
            conn.sendall(data)


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(16) == b""
    except ConnectionError:
        return True


def test_the_proxy_relays_until_cut_then_refuses_until_healed() -> None:
    import threading

    server, port = _echo_server()

    def echo_twice() -> None:
        for _ in range(2):
            _echo_once(server)

    threading.Thread(target=echo_twice, daemon=True).start()
    with CuttableProxy(port) as proxy:
        first = socket.create_connection(("127.0.0.1", proxy.port), 5)
        first.sendall(b"ping")
        first.settimeout(5)
        assert first.recv(16) == b"ping"

        proxy.cut()
        assert _closed(first)
        refused = socket.create_connection(("127.0.0.1", proxy.port), 5)
        assert _closed(refused)

        proxy.heal()
        time.sleep(0.1)
        again = socket.create_connection(("127.0.0.1", proxy.port), 5)
        again.sendall(b"pong")
        again.settimeout(5)
        assert again.recv(16) == b"pong"
        for sock in (first, refused, again):
            sock.close()
    server.close()


async def test_a_request_is_open_until_its_answer_passes(nats_url: str, unique: str) -> None:
    import asyncio

    import nats

    from loadtests.chaos.inflight import InFlight

    subject = f"chaos.{unique}.ask"
    release = asyncio.Event()
    nc = await nats.connect(nats_url)

    async def slow(msg: Any) -> None:
        await release.wait()
        await msg.respond(b"done")

    await nc.subscribe(subject, cb=slow)
    async with InFlight(nats_url, (subject,)) as requests:
        assert await requests.wait(0.2) == 0
        asking = asyncio.create_task(nc.request(subject, b"x", timeout=10))
        assert await requests.wait(5) == 1
        release.set()
        assert (await asking).data == b"done"
        await asyncio.sleep(0.2)
        assert requests.count() == 0
    await nc.close()
