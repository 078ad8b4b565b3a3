"""The scenarios: concurrency, dispatch, kill, baseline. Each returns a result dict."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from redis.asyncio import Redis

from loadtests import bare, gitfloor
from loadtests.client import first_at, records, submit_all, task_body, wait_until
from loadtests.resources import MachineCpu
from loadtests.stats import summary
from loadtests.target import Target

ACCEPT_CONNECTIONS = 50
"""Connections the accept-rate scenario (and its bare floor, ratios.py) is driven from."""


def http_client(target: Target, admin: bool = False) -> httpx.AsyncClient:
    token = target.admin_token if admin else target.api_token
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.AsyncClient(
        base_url=target.url, timeout=60, limits=limits, headers={"Authorization": f"Bearer {token}"}
    )


def _edit_plan(name: str) -> list[dict[str, Any]]:
    return [
        {"tool": "write_file", "input": {"path": f"load/{name}.txt", "content": f"{name}\n"}},
        {"tool": "finish", "input": {"summary": f"wrote {name}"}},
    ]


async def _valkey_figures(target: Target) -> dict[str, Any]:
    if not target.valkey_url:
        return {}
    client = Redis.from_url(target.valkey_url)
    try:
        info = await client.info()
        return {
            k: info.get(k)
            for k in (
                "connected_clients",
                "total_commands_processed",
                "instantaneous_ops_per_sec",
                "used_memory_human",
            )
        }
    finally:
        await client.aclose()


async def _nats_figures(target: Target) -> dict[str, Any]:
    if not target.nats_url:
        return {}
    nc = await nats.connect(target.nats_url)
    try:
        info = await nc.jetstream().account_info()
        return {
            "jetstream_api_total": info.api.total,
            "jetstream_api_errors": info.api.errors,
            "streams": info.streams,
            "consumers": info.consumers,
            "storage_bytes": info.storage,
        }
    finally:
        await nc.close()


async def _warm_up(http: httpx.AsyncClient, target: Target, run: str, warm: int) -> float:
    """One agent on the repository (the pool learns it), then until ``warm`` containers
    wait (docker); seconds it took."""
    import docker

    began = time.monotonic()
    body = task_body(str(target.repository), f"warmup-{run}", _edit_plan(f"warmup-{run}"))
    _, errors = await submit_all(http, [body])
    if errors:
        raise RuntimeError(f"warm-up spawn failed: {errors[0]}")

    def done(stats: dict[str, Any]) -> bool:
        tasks = stats["tasksByState"]
        return not (tasks.get("pending") or tasks.get("assigned") or tasks.get("executing"))

    await wait_until(http, done, 120, "warm-up agent")
    client = docker.from_env()
    try:
        while len(client.api.containers(filters={"label": "mosaic.warm"})) < warm:
            if time.monotonic() - began > 180:
                raise RuntimeError(f"the warm pool did not reach {warm} containers in 180 s")
            await asyncio.sleep(0.2)
    finally:
        client.close()
    return time.monotonic() - began


def _sandbox_steps(got: list[dict[str, Any]]) -> dict[str, Any]:
    """What the spawner's ``progress`` events say of each agent's sandbox step (with a
    warm pool): how many were warm, and the step's time, warm and cold."""
    warm_ms: list[float] = []
    cold_ms: list[float] = []
    for record in got:
        for event in record["events"]:
            detail = event.get("detail") or {}
            if event.get("kind") == "progress" and detail.get("step") == "sandbox":
                (warm_ms if detail.get("warm") else cold_ms).append(float(detail["ms"]) / 1000)
    if not warm_ms and not cold_ms:
        return {}
    return {
        "warm_started": len(warm_ms),
        "sandbox_step_warm": summary(warm_ms),
        "sandbox_step_cold": summary(cold_ms),
    }


async def concurrency(target: Target, agents: int, timeout: float, warm: int = 0) -> dict[str, Any]:
    """N agents at once doing a small real edit: spawn latency, completion, errors, loss.

    With ``warm`` (docker, ``MOSAIC_SANDBOX_WARM``), one agent runs first so the pool
    learns the repository, and the burst starts once ``warm`` containers wait."""
    run = uuid.uuid4().hex[:6]
    bodies = [
        task_body(str(target.repository), f"conc-{run}-{n}", _edit_plan(f"{run}-{n}"))
        for n in range(agents)
    ]
    valkey_before = await _valkey_figures(target)
    async with http_client(target) as http:
        warm_up = await _warm_up(http, target, run, warm) if warm else None
        started, cpu = time.monotonic(), MachineCpu()
        ids, errors = await submit_all(http, bodies)
        submitted = time.monotonic() - started
        base = (await http.get("/queue")).json()["tasksByState"]
        want = base.get("completed", 0) + base.get("failed", 0)

        def finished(stats: dict[str, Any]) -> bool:
            tasks = stats["tasksByState"]
            return bool(
                tasks.get("completed", 0) + tasks.get("failed", 0) >= want
                and not (
                    tasks.get("pending", 0) or tasks.get("assigned", 0) or tasks.get("executing", 0)
                )
            )

        await wait_until(http, finished, timeout, f"concurrency {agents}")
        wall = time.monotonic() - started
        machine = cpu.stop(agents)
        got = await records(http, ids)
    spawn, complete, queued, setup = [], [], [], []
    for record in got:
        created, assigned, running, done = (
            first_at(record, s) for s in ("spawning", "assigned", "running", "completed")
        )
        if created and running:
            spawn.append(running - created)
        if created and assigned and running:
            queued.append(assigned - created)
            setup.append(running - assigned)
        if created and done:
            complete.append(done - created)
    states = [r["state"] for r in got]
    return {
        "scenario": "concurrency",
        "agents": agents,
        "submitted": len(ids),
        "submit_errors": errors[:10],
        "completed": states.count("completed"),
        "failed": states.count("failed"),
        "lost": agents - len(got) - len(errors),
        "failures": [r.get("error") for r in got if r["state"] != "completed"][:10],
        "submit_seconds": round(submitted, 3),
        "wall_seconds": round(wall, 3),
        "spawn_latency": summary(spawn),
        "queue_wait": summary(queued),
        "worktree_and_sandbox": summary(setup),
        **({"warm_pool": warm, "warm_up_seconds": round(warm_up, 1)} if warm_up else {}),
        **_sandbox_steps(got),
        "completion_time": summary(complete),
        "machine_cpu": machine,
        "valkey_before": valkey_before,
        "valkey_after": await _valkey_figures(target),
        "nats": await _nats_figures(target),
        "_spawn": spawn,
        "_complete": complete,
    }


async def dispatch(target: Target, tasks: int, timeout: float) -> dict[str, Any]:
    """No-op agents: HTTP accept rate, and accept -> agent running throughput."""
    run = uuid.uuid4().hex[:6]
    plan = [{"tool": "finish", "input": {"summary": "nothing to do"}}]
    bodies = [task_body(str(target.repository), f"disp-{run}-{n}", plan) for n in range(tasks)]
    async with http_client(target) as http:
        started, cpu = time.monotonic(), MachineCpu()
        ids, errors = await submit_all(http, bodies, parallel=ACCEPT_CONNECTIONS)
        accept_s = time.monotonic() - started
        unfinished = None
        try:
            await wait_until(
                http,
                lambda s: (
                    not (
                        s["tasksByState"].get("pending", 0)
                        or s["tasksByState"].get("assigned", 0)
                        or s["tasksByState"].get("executing", 0)
                    )
                ),
                timeout,
                f"dispatch {tasks}",
            )
        except TimeoutError as exc:  # report what ran so far; the run still fails
            unfinished = str(exc)
        machine = cpu.stop(tasks)
        got = await records(http, ids)
    created = [t for r in got if (t := first_at(r, "spawning"))]
    running = [t for r in got if (t := first_at(r, "running"))]
    span = (max(running) - min(created)) if running and created else 0.0
    return {
        "scenario": "dispatch",
        "tasks": tasks,
        "accepted": len(ids),
        "errors": errors[:10],
        "accept_per_second": round(len(ids) / accept_s, 1) if accept_s else 0,
        "dispatch_per_second": round(len(running) / span, 1) if span else 0,
        "started": len(running),
        "completed": sum(r["state"] == "completed" for r in got),
        "failed": sum(r["state"] == "failed" for r in got),
        "failure_reasons": sorted(
            {str(r.get("error"))[:160] for r in got if r["state"] == "failed"}
        )[:5],
        "accept_seconds": round(accept_s, 3),
        "dispatch_span_seconds": round(span, 3),
        "machine_cpu": machine,
        "unfinished": unfinished,
    }


async def accept_alone(target: Target, requests: int) -> dict[str, Any]:
    """The gateway's accept rate with nothing else running, as the bare endpoint's floor
    is measured: intake held (a kill-all's hold, so nothing queued starts), ``requests``
    spawns from the same 50 connections. The held tasks are left queued: run it last,
    on a system about to stop (``ratios`` does, after the scenario)."""
    plan = [{"tool": "finish", "input": {"summary": "nothing to do"}}]
    run = uuid.uuid4().hex[:6]
    bodies = [task_body(str(target.repository), f"alone-{run}-{n}", plan) for n in range(requests)]
    async with http_client(target) as http, http_client(target, admin=True) as admin:
        held = await admin.post("/agents/kill-all")
        if held.status_code != 200:
            return {"unavailable": f"could not hold intake: {held.status_code}"}
        started = time.monotonic()
        ids, errors = await submit_all(http, bodies, parallel=ACCEPT_CONNECTIONS)
        seconds = time.monotonic() - started
    return {
        "requests": requests,
        "accepted": len(ids),
        "errors": errors[:5],
        "per_second": round(len(ids) / seconds, 1) if seconds else 0.0,
    }


async def kill(target: Target, agents: int, timeout: float, sandbox: str) -> dict[str, Any]:
    """Kill-one and kill-all latency with N running agents (until killed and sandbox gone)."""
    run = uuid.uuid4().hex[:6]
    plan = [
        {"tool": "run_command", "input": {"command": "sleep 550", "timeout": 600}},
        {"tool": "finish", "input": {"summary": "never"}},
    ]
    bodies = [
        task_body(str(target.repository), f"kill-{run}-{n}", plan, timeout=1200)
        for n in range(agents)
    ]
    async with http_client(target) as http, http_client(target, admin=True) as admin:
        ids, errors = await submit_all(http, bodies)
        await wait_until(
            http,
            lambda s: s["agentsByState"].get("running", 0) >= len(ids),
            timeout,
            f"kill: {agents} running",
        )
        victim, rest = ids[0], ids[1:]
        # what "gone" is measured against: each agent's command is running in its sandbox
        seen = len(bwrap_processes(rest)) if sandbox == "bwrap" else None
        async with (
            sandbox_watch(sandbox, [victim]) as victim_gone,
            sandbox_watch(sandbox, rest) as rest_gone,
        ):
            t0 = time.perf_counter()
            # request -> sandbox gone, watched from the request on (as docker kill's floor)
            one = asyncio.create_task(until_gone(victim_gone, 30))
            answer = (await http.post(f"/agents/{victim}/kill")).json()
            kill_one_answered = time.perf_counter() - t0
            kill_one = await one - t0

            t0, ordered_at = time.perf_counter(), datetime.now(UTC)
            # the sandboxes are watched from the moment the order goes out, beside its answer
            gone = asyncio.create_task(until_gone(rest_gone, 60))
            report = (await admin.post("/agents/kill-all")).json()
            answered = time.perf_counter() - t0
            await wait_until(  # polled every 20 ms: the goal is < 0.3 s, a 0.5 s poll hid it
                admin,
                lambda st: not st["agentsByState"].get("running", 0),
                60,
                "kill-all",
                quiet=True,
                interval=0.02,
            )
            shown = time.perf_counter() - t0
            sandboxes_gone = await gone - t0
            kill_all = time.perf_counter() - t0
        got = await records(http, ids)
        await admin.post("/agents/resume")
    return {
        "scenario": "kill",
        "agents": agents,
        "errors": errors[:10],
        "kill_one_seconds": round(kill_one, 4),
        "kill_one_answer_seconds": round(kill_one_answered, 4),
        "kill_one_answer": answer,
        "kill_all_seconds": round(kill_all, 4),
        "kill_all_answer_seconds": round(answered, 4),
        "kill_all_sandboxes_gone_seconds": round(sandboxes_gone, 4),
        "bwrap_processes_before_kill_all": seen,
        "kill_all_shown_seconds": round(shown, 4),
        "kill_all_reported": len(report) if isinstance(report, list) else report,
        "killed": sum(r["state"] == "killed" for r in got),
        **_record_times(ordered_at, [r["completedAt"] for r in got[1:] if r["state"] == "killed"]),
        "states": {s: [r["state"] for r in got].count(s) for s in {r["state"] for r in got}},
        "not_killed": [
            (r["agentId"], r["state"], r.get("error")) for r in got if r["state"] != "killed"
        ],
    }


def _record_times(ordered_at: datetime, stamps: list[str | None]) -> dict[str, float | None]:
    """When the kill-all's ``killed`` records were written (ISO ``stamps``), in seconds
    after the request went out: the first and the last (a record says ``killed`` only
    once its sandbox's processes are gone). ``kill_all_seconds`` adds what the observer
    needs to see it (polling ``/queue``). Same host, same clock."""
    times = [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps if s]
    if not times:
        return {"kill_all_first_record_seconds": None, "kill_all_last_record_seconds": None}
    return {
        "kill_all_first_record_seconds": round((min(times) - ordered_at).total_seconds(), 4),
        "kill_all_last_record_seconds": round((max(times) - ordered_at).total_seconds(), 4),
    }


@contextlib.asynccontextmanager
async def sandbox_watch(sandbox: str, agent_ids: list[str]) -> AsyncIterator[Callable[[], bool]]:
    """A check that none of the agents' sandboxes is left, made ready before any clock
    starts (a Docker client's creation asks the daemon its version: inside the measured
    interval it delayed the very request it measured). Docker: their containers (by
    label, one list call, no per-container inspect). bwrap: their bwrap processes (the
    agent's id is in the path each binds; the namespace's pid 1 ends only after the
    kernel has killed everything in it, so the outer bwrap gone, or a zombie, means the
    sandbox's processes are gone). ``none`` has no sandbox to watch: always true."""
    if sandbox == "bwrap":  # found once, before the clock; then only those are looked at
        pids = bwrap_processes(agent_ids)
        yield lambda: not any(_running(pid) for pid in pids)
        return
    if sandbox != "docker" or not agent_ids:
        yield lambda: True
        return

    def connect() -> Any:
        import docker

        return docker.from_env()

    client = await asyncio.to_thread(connect)
    wanted = set(agent_ids)

    def none_left() -> bool:
        live = client.api.containers(filters={"label": "mosaic.agent_id"})
        return not wanted & {(c.get("Labels") or {}).get("mosaic.agent_id") for c in live}

    try:
        yield none_left
    finally:
        client.close()


async def until_gone(none_left: Callable[[], bool], timeout: float) -> float:
    """Poll ``none_left`` (in a thread, every 10 ms) until true; ``time.perf_counter()``
    at the first look that found none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(none_left):
            return time.perf_counter()
        await asyncio.sleep(0.01)
    raise TimeoutError(f"sandboxes still there after {timeout:.0f}s")


def _running(pid: int) -> bool:
    """Whether process ``pid`` is there and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def bwrap_processes(agent_ids: list[str]) -> list[int]:
    """Live (not zombie) bwrap processes whose command line names one of ``agent_ids``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended while we looked
            continue
        if not argv[0].endswith(b"bwrap") or not _running(int(proc.name)):
            continue
        line = b" ".join(argv).decode(errors="replace")
        if any(agent_id in line for agent_id in agent_ids):
            found.append(int(proc.name))
    return found


async def baseline(target: Target, rounds: int = 200) -> dict[str, Any]:
    """The raw floor on this machine: NATS, JetStream, Valkey, a bwrap sandbox's start and
    Docker's when present, with their ratio."""
    result: dict[str, Any] = {"scenario": "baseline"}
    if target.nats_url:
        nc = await nats.connect(target.nats_url)

        async def echo(msg: Any) -> None:
            await msg.respond(b"ok")

        sub = await nc.subscribe("loadtest.echo", cb=echo)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await nc.request("loadtest.echo", b"x", timeout=2)
            times.append(time.perf_counter() - t0)
        result["nats_request_reply"] = summary(times)
        await sub.unsubscribe()
        js = nc.jetstream()
        await js.add_stream(name="LOADTEST", subjects=["loadtest.js"])
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await js.publish("loadtest.js", b"x")
            times.append(time.perf_counter() - t0)
        result["jetstream_publish_ack"] = summary(times)
        await js.delete_stream("LOADTEST")
        await nc.close()
    if target.valkey_url:
        client = Redis.from_url(target.valkey_url)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await client.ping()
            times.append(time.perf_counter() - t0)
        result["valkey_ping"] = summary(times)
        await client.aclose()
    result |= await _bwrap_floor()
    result |= await asyncio.to_thread(docker_floor)
    result["serial_git_cycles_100"] = await asyncio.to_thread(gitfloor.serial_git_cycles, 100)
    result["worktree_add_remove_100"] = await asyncio.to_thread(gitfloor.worktree_add_remove, 100)
    if target.nats_url and target.valkey_url:
        plan = [{"tool": "finish", "input": {"summary": "nothing to do"}}]
        bodies = [task_body(str(target.repository), f"bare-{n}", plan) for n in range(1000)]
        result["bare_accept_1000"] = await bare.accept_rate(
            target.nats_url, target.valkey_url, bodies, ACCEPT_CONNECTIONS
        )
    docker_start = result.get("docker_create_start", {}).get("p50_ms")
    bwrap_start = result.get("bwrap_start", {}).get("p50_ms")
    if docker_start and bwrap_start:
        result["docker_over_bwrap_start"] = f"{docker_start / bwrap_start:.1f}x (p50)"
    return result


async def _bwrap_factory() -> Any:
    """The sandbox layer's bwrap factory, checked; or why bwrap cannot run here (str)."""
    from shared.sandbox.bwrap import BwrapSandboxFactory

    factory = BwrapSandboxFactory()
    try:
        await factory.check()
    except Exception as exc:
        return f"unavailable: {exc}"
    return factory


async def _bwrap_floor(rounds: int = 20) -> dict[str, Any]:
    """One command in a fresh bwrap sandbox (``bwrap <the view> -- sh -c true``), as each
    agent command pays it: namespaces, mounts, exec, exit."""
    import tempfile

    from shared.sandbox.base import SandboxSpec

    factory = await _bwrap_factory()
    if isinstance(factory, str):
        return {"bwrap": factory}
    with tempfile.TemporaryDirectory(prefix="mosaic-bwrap-floor-") as tree:
        box = await factory.create(SandboxSpec("baseline", "baseline", Path(tree)))
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            result = await box.exec("true", timeout=10)
            times.append(time.perf_counter() - t0)
            if result.exit_code != 0:
                return {"bwrap": f"failed: {result.output.strip()[-200:]}"}
        await box.close()
    return {"bwrap_start": summary(times)}


async def bwrap_kill_floor(sandboxes: int) -> dict[str, Any]:
    """The floor of a kill-all of ``sandboxes`` bwrap agents: as many sandboxes, each
    running one command, killed at once by a plain loop (``kill_now`` each, as the
    spawner's order callback does), until every command has ended; no records, no
    services. The kernel's teardown of that many namespaces is most of it. Every
    sandbox is closed however it ends."""
    import tempfile

    from shared.sandbox.base import SandboxSpec

    factory = await _bwrap_factory()
    if isinstance(factory, str):
        return {"bwrap": factory}
    boxes: list[Any] = []
    commands: list[asyncio.Task[Any]] = []
    with tempfile.TemporaryDirectory(prefix="mosaic-kill-floor-") as root:
        try:
            trees = await asyncio.to_thread(_empty_dirs, Path(root), sandboxes)
            for tree in trees:
                boxes.append(await factory.create(SandboxSpec(tree.name, "floor", tree)))
            commands = [asyncio.create_task(b.exec("sleep 300", timeout=600)) for b in boxes]
            started = 0  # each sandbox: its outer bwrap and its pid 1, both naming the root
            deadline = time.monotonic() + 60
            while started < 2 * sandboxes and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                started = len(bwrap_processes([root]))
            if started < 2 * sandboxes:
                return {"bwrap": f"only {started // 2} of {sandboxes} sandboxes started"}
            t0 = time.perf_counter()
            for box in boxes:
                box.kill_now()
            await asyncio.gather(*commands, return_exceptions=True)
            seconds = time.perf_counter() - t0
        finally:
            for task in commands:
                task.cancel()
            await asyncio.gather(*commands, return_exceptions=True)
            for box in boxes:
                await box.close()
    return {"sandboxes": sandboxes, "seconds": round(seconds, 4)}


def _empty_dirs(root: Path, count: int) -> list[Path]:
    made = [root / f"box-{n}" for n in range(count)]
    for path in made:
        path.mkdir()
    return made


def docker_floor(rounds: int = 10, burst: int = 0) -> dict[str, Any]:
    """``docker create`` + ``start`` and ``docker kill`` of the sandbox image, ``rounds``
    times one after another; with ``burst``, also ``burst`` creations at once (one
    thread each), which is what a burst of as many agents asks of the daemon."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        return {"docker": f"unavailable: {exc}"}
    image = "mosaic/sandbox:latest"
    try:
        client.images.get(image)
    except Exception:
        return {"docker": f"image {image} missing"}

    def create_start() -> tuple[float, Any]:
        t0 = time.perf_counter()
        container = client.containers.create(image, ["sleep", "600"], network_mode="none")
        container.start()
        return time.perf_counter() - t0, container

    starts, kills = [], []
    for _ in range(rounds):
        took, container = create_start()
        starts.append(took)
        t0 = time.perf_counter()
        container.kill()
        kills.append(time.perf_counter() - t0)
        with contextlib.suppress(Exception):
            container.remove(force=True)
    result = {"docker_create_start": summary(starts), "docker_kill": summary(kills)}
    if burst:
        with ThreadPoolExecutor(burst) as pool:
            made = list(pool.map(lambda _: create_start(), range(burst)))
        result[f"docker_create_start_{burst}_at_once"] = summary([took for took, _ in made])
        for _, container in made:
            with contextlib.suppress(Exception):
                container.remove(force=True)
    client.close()
    return result
