"""The chaos scenarios. Each runs a workload on its own system, injects one kind of fault
many times, then returns its table rows and raw figures."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from typing import Any

import psutil

from loadtests.chaos.checks import Check, clean, exactly_once, zero
from loadtests.chaos.evidence import Leftovers, leftover_processes, leftovers, outcome
from loadtests.chaos.evidence import pushes_per_branch as pushes
from loadtests.chaos.inflight import InFlight
from loadtests.chaos.proxy import CuttableProxy
from loadtests.chaos.stage import Stage, progress
from loadtests.chaos.workload import MAX_RETRIES, Workload, unfinished
from shared import subjects

Result = tuple[list[Check], dict[str, Any]]


async def _settled_leftovers(stage: Stage, timeout: float) -> Leftovers:
    """Leftovers once the system had ``timeout`` seconds to clean up (its own cleanup,
    then the killswitch's reaper): what is still there then stays."""
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(leftovers, stage.home, stage.pids(), 0)
        found.process_groups = await stage.process_groups()
        if found.count == 0 or time.monotonic() > deadline:
            return found
        await asyncio.sleep(2)


async def _judge(
    stage: Stage, name: str, workload: Workload, timeout: float, all_complete: bool = True
) -> Result:
    await workload.stop()
    records = await workload.settle(timeout)
    counts = await asyncio.to_thread(pushes, stage.remote)
    result = outcome(records, counts, len(workload.ids), MAX_RETRIES + 1)
    found = await _settled_leftovers(stage, 60)
    rows = exactly_once(name, result, all_complete) + clean(name, found)
    return rows, {"outcome": vars(result), "leftovers": vars(found), "refused": workload.refused}


REQUESTS = {"gitops": ("mosaic.gitops.>",), "gates": (subjects.GATES_CHECK_ANY_HOST,)}
"""The request subjects of the services killed mid-request (``shared.subjects``)."""


async def service_kills(
    stage: Stage, service: str, kills: int, agents: int, every_s: float, timeout: float
) -> Result:
    """SIGKILL ``service`` ``kills`` times while ``agents`` agents run, restarting it each
    time; then every task must have ended once and nothing may be left behind.

    The spawner is killed with agents running on it; gitops and gates with a request of
    an agent open (asked, not answered)."""
    name = f"SIGKILL {service} x{kills}"
    workload = Workload(stage.http, str(stage.remote), agents)
    await workload.submit(agents)
    workload.start()
    hit: list[int] = []
    started = time.monotonic()
    assert stage.target.nats_url
    async with InFlight(stage.target.nats_url, REQUESTS.get(service, ())) as requests:
        for n in range(kills):
            await stage.wait_progress(120)
            await asyncio.sleep(random.uniform(0.2, 2 * every_s))
            if service in REQUESTS:
                hit.append(await requests.wait(120))
            else:
                # the count seen is the count hit: a second look before the kill let a
                # short agent end in between and the kill counted as a miss
                hit.append(await stage.wait_running_on(service, 1, 120))
            stage.kill(service)
            requests.forget()
            progress(f"{name}: {n + 1} kills, {len(workload.ids)} tasks accepted")
    chaos_s = time.monotonic() - started
    rows, figures = await _judge(stage, name, workload, timeout)
    what = "requests open" if service in REQUESTS else "running agents"
    kills_row = Check(
        name,
        f"SIGKILLs of {service} " + ("mid-request" if service in REQUESTS else "mid-run"),
        f"{sum(h > 0 for h in hit)} of {len(hit)} ({sum(hit)} {what} at the kills, "
        f"{chaos_s:.0f} s)",
        f"{kills}",
        sum(h > 0 for h in hit) == kills,
    )
    return [kills_row, *rows], {**figures, "hit_at_kills": hit, "chaos_seconds": chaos_s}


async def server_restarts(
    stage: Stage, server: str, restarts: int, agents: int, every_s: float, timeout: float
) -> Result:
    """Restart nats-server (JetStream on disk) or valkey-server (AOF) mid-run."""
    name = f"restart {server} x{restarts}"
    workload = Workload(stage.http, str(stage.remote), agents)
    await workload.submit(agents)
    workload.start()
    hit: list[int] = []
    for n in range(restarts):
        await stage.wait_progress(120)
        await asyncio.sleep(random.uniform(0.2, 2 * every_s))
        hit.append(await stage.wait_running_on("spawner", 1, 120))
        await asyncio.to_thread(stage.supervisor.servers[server].restart)
        progress(f"{name}: {n + 1} restarts, {len(workload.ids)} tasks accepted")
    rows, figures = await _judge(stage, name, workload, timeout)
    restarts_row = Check(
        name,
        f"restarts of {server}-server with agents running",
        f"{sum(h > 0 for h in hit)} of {len(hit)} ({sum(hit)} running agents)",
        f"{restarts}",
        sum(h > 0 for h in hit) == restarts,
    )
    return [restarts_row, *rows], {**figures, "running_at_restarts": hit}


def _sandboxes_of(pid: int) -> int:
    """Live processes under one spawner process: its agents' sandboxes and commands."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    return sum(1 for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE)


async def partition(
    stage: Stage, agents: int, lease_s: float, cut_s: float, timeout: float
) -> Result:
    """Cut one spawner from NATS (through a proxy) for ``cut_s`` > its lease: it must end
    its own sandboxes within the lease (plus a second to notice and kill), and its
    agents finish elsewhere, once."""
    name = f"NATS cut from one spawner {cut_s:.0f} s"
    sup = stage.supervisor
    nats_port = sup.servers["nats"].port
    with CuttableProxy(nats_port) as proxy:
        url = sup.nats_url_for("spawner").replace(f":{nats_port}", f":{proxy.port}")
        sup.start_service("spawner-2", {"NATS_URL": url})
        await asyncio.to_thread(sup.wait_healthy, 60)
        # the first spawner stands aside until the one to cut holds the agents, then
        # comes back to take them over; long sleeps: they are mid-command at the lease
        await asyncio.to_thread(sup.stop_service, "spawner")
        workload = Workload(stage.http, str(stage.remote), agents, sleep_s=(cut_s + 5, cut_s + 10))
        await workload.submit(agents)
        on_cut = await stage.wait_running_on("spawner-2", agents, 120)
        sup.start_service("spawner")
        await asyncio.to_thread(sup.wait_healthy, 60)
        victims = [a["agentId"] for a in await stage.running_on("spawner-2")]
        cut_instance, cut_pid = stage.instance("spawner-2"), sup.procs["spawner-2"].pid
        proxy.cut()
        cut_at = time.monotonic()
        last_alive = 0.0
        alive_after_lease = 0
        grace_s = lease_s + 1
        while (elapsed := time.monotonic() - cut_at) < cut_s:
            alive = _sandboxes_of(cut_pid)
            if alive:
                last_alive = elapsed
            if elapsed > grace_s:
                alive_after_lease = max(alive_after_lease, alive)
            progress(f"{name}: {elapsed:4.1f} s cut, {alive} sandbox processes of the cut spawner")
            await asyncio.sleep(0.25)
        proxy.heal()
        rows, figures = await _judge(stage, name, workload, timeout)
    records = {r["agentId"]: r for r in await _records(stage, victims)}
    elsewhere = [a for a, r in records.items() if r.get("spawner") != cut_instance]
    done = [a for a, r in records.items() if r.get("state") == "completed"]
    cut_rows = [
        Check(
            name,
            "agents on the cut spawner at the cut",
            f"{len(victims)} (saw {on_cut} running there first)",
            ">= 1",
            len(victims) >= 1,
        ),
        zero(
            name,
            f"its sandbox processes alive > {grace_s:.0f} s after the cut",
            alive_after_lease,
        ),
        Check(
            name,
            "last of its sandbox processes seen",
            f"{last_alive:.1f} s after the cut" if last_alive else "none after the cut",
            f"<= {grace_s:.0f} s (lease {lease_s:.0f} s + 1 s)",
            last_alive <= grace_s,
        ),
        Check(
            name,
            "its agents completed elsewhere",
            f"{len(set(done) & set(elsewhere))} of {len(victims)}",
            f"{len(victims)}",
            set(victims) <= set(done) & set(elsewhere),
        ),
    ]
    return [*cut_rows, *rows], {**figures, "victims": victims, "last_alive_s": last_alive}


async def _records(stage: Stage, ids: list[str]) -> list[dict[str, Any]]:
    found = []
    for agent_id in ids:
        answer = await stage.http.get(f"/agents/{agent_id}/status")
        if answer.status_code == 200:
            found.append(answer.json())
    return found


async def _live(stage: Stage) -> int:
    """Agents a spawner holds (task assigned or executing) plus live sandbox processes."""
    counts = await unfinished(stage.http)
    held = -1 if counts is None else counts["assigned"] + counts["executing"]
    busy = frozenset(stage.supervisor.procs[s].pid for s in ("gitops", "gates"))
    processes = len(await asyncio.to_thread(leftover_processes, stage.home, stage.pids(), busy))
    return -1 if held < 0 else held + processes


async def kill_all(stage: Stage, agents: int, every_s: float, timeout: float) -> Result:
    """Kill-all while the spawner and gitops are being SIGKILLed: 0 live agents within 1 s
    of the kill-all being answered (the system reachable), and none starting after."""
    name = "kill-all mid-chaos"
    workload = Workload(stage.http, str(stage.remote), agents, sleep_s=(120, 150))
    await workload.submit(agents)
    await stage.wait_running_on("spawner", max(agents // 2, 1), 180)
    stopping = asyncio.Event()

    async def chaos() -> None:
        while not stopping.is_set():
            await asyncio.sleep(random.uniform(0.2, 2 * every_s))
            if not stopping.is_set():
                stage.kill(random.choice(("spawner", "gitops")))

    faults = asyncio.create_task(chaos())
    await asyncio.sleep(3 * every_s)
    stopping.set()
    await faults
    # the kill-all lands with the spawner dead: the killswitch must end its agents
    stage.supervisor.stop_service("spawner", signal.SIGKILL)
    answer = await stage.admin.post("/agents/kill-all")
    reachable = time.monotonic()
    stage.supervisor.start_service("spawner")
    to_zero: float | None = None
    at_one_s = -1
    while (elapsed := time.monotonic() - reachable) < 10:
        live = await _live(stage)
        if live == 0 and to_zero is None:
            to_zero = elapsed
        if elapsed >= 1 and at_one_s < 0:
            at_one_s = live
        if live != 0:
            to_zero = None
        await asyncio.sleep(0.05)
    after = await _live(stage)
    # the queued ones wait for resume (documented): end them one by one, then resume
    for agent_id in workload.ids:
        await stage.http.post(f"/agents/{agent_id}/kill")
    await stage.admin.post("/agents/resume")
    rows, figures = await _judge(stage, name, workload, timeout, all_complete=False)
    reported = answer.json() if answer.status_code == 200 else []
    kill_rows = [
        Check(
            name,
            "kill-all answered",
            f"HTTP {answer.status_code}, {len(reported)} agents",
            "200",
            answer.status_code == 200,
        ),
        Check(
            name,
            "live agents 1 s after the answer",
            "system unreachable" if at_one_s < 0 else str(at_one_s),
            "0",
            at_one_s == 0,
        ),
        Check(
            name,
            "time until 0 live agents (stayed 0)",
            "never" if to_zero is None else f"{to_zero * 1000:.0f} ms",
            "<= 1000 ms",
            to_zero is not None and to_zero <= 1,
        ),
        zero(name, "live agents 10 s after (spawner restarted)", max(after, 0)),
    ]
    return [*kill_rows, *rows], {**figures, "to_zero_s": to_zero, "kill_all": reported}
