"""Process groups of ``none`` and ``bwrap`` sandboxes, recorded in Valkey so another
process can end them.

These backends run each command as its own host process group
(``shared.sandbox.processes``): for ``none`` the group is the command's shell and its
children; for ``bwrap`` it is the ``bwrap`` process, whose namespace (every process of
the command, ``setsid`` children included) dies with it (``--die-with-parent``: its
pid 1 is SIGKILLed, and the kernel then kills the rest). The spawner records each
live group under ``<p>:agent:<agentId>:pgids`` (a set of ``<host>:<pgid>:<start>``
members, ``start`` being the leader's start time in clock ticks from ``/proc``), and
forgets it when the command ends. When the owning spawner is dead or hung, the
killswitch reads the set and SIGKILLs the groups that are still the same processes:
a group whose leader now has another start time (its number reused) is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from redis.asyncio import Redis


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (``/proc/<pid>/task/*/children``); empty if gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a dead pid namespace's pid 1 is one)."""
    fields = _stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] != "Z"


def kill_tree_top(pgid: int) -> list[int]:
    """SIGKILL group ``pgid`` and its leader's direct children wherever they went; returns
    those children.

    A bwrap sandbox's leader is ``bwrap``; its child is the pid 1 of the sandbox's pid
    namespace, in a session of its own. Killing that child at once ends the namespace
    (the kernel kills every process in it), without waiting for ``--die-with-parent``.
    """
    top = children(pgid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    for child in top:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
    return top


def group_alive(pgid: int) -> bool:
    """Whether any process is still in group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def host_name() -> str:
    """This host's name as recorded in members (no ``:`` in it)."""
    return socket.gethostname().replace(":", "_")


class ProcessGroupRegistry:
    """Records the live process groups of each agent's ``none`` or ``bwrap`` sandbox."""

    def __init__(self, redis: Redis, prefix: str = "mosaic") -> None:
        self._redis = redis
        self._prefix = prefix

    def key(self, agent_id: str) -> str:
        """``<p>:agent:<agentId>:pgids``."""
        return f"{self._prefix}:agent:{agent_id}:pgids"

    @staticmethod
    def member(pgid: int) -> str:
        """The set member for a group led by ``pgid`` on this host."""
        return f"{host_name()}:{pgid}:{start_ticks(pgid) or 0}"

    async def record(self, agent_id: str, pgid: int) -> str:
        """Note a live group; returns the member to ``forget`` later."""
        member = self.member(pgid)
        await self._redis.sadd(self.key(agent_id), member)
        return member

    async def forget(self, agent_id: str, member: str) -> None:
        """The group has ended."""
        await self._redis.srem(self.key(agent_id), member)

    async def clear(self, agent_id: str) -> None:
        """The agent has ended: drop its set."""
        await self._redis.delete(self.key(agent_id))

    async def agent_ids(self) -> AsyncIterator[str]:
        """Every agent with recorded groups (a scan: the reaper's pass, not a hot path)."""
        async for raw in self._redis.scan_iter(match=self.key("*"), count=500):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            yield key.removeprefix(f"{self._prefix}:agent:").removesuffix(":pgids")

    async def members(self, agent_id: str) -> list[str]:
        """Every recorded group of the agent (on any host)."""
        raw = await self._redis.smembers(self.key(agent_id))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw)


def kill_groups(members: list[str]) -> list[int]:
    """SIGKILL the recorded groups of this host that are still ours; returns their pgids.

    A member of another host is skipped (only a killswitch on that host can reach it).
    """
    here = host_name()
    killed: list[int] = []
    for member in members:
        host, _, rest = member.partition(":")
        pgid_text, _, start_text = rest.partition(":")
        if host != here or not pgid_text.isdigit():
            continue
        pgid = int(pgid_text)
        if pgid <= 1:
            continue
        leader_start = start_ticks(pgid)
        if leader_start is not None and start_text.isdigit() and leader_start != int(start_text):
            continue  # the number now belongs to another process
        if not group_alive(pgid):
            continue
        kill_tree_top(pgid)
        killed.append(pgid)
    return killed
