"""Each scenario's figure beside its floor, measured in the same run.

The machine is shared and noisy: an absolute figure says little, its ratio to what the
plain operation costs at the same moment says how much the system adds. After a scenario
ends (its system still up), ``attach`` measures that scenario's floors and adds them and
the ratios to the result, under keys ``floor_*`` and ``*_over_*``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loadtests import bare, gitfloor
from loadtests.client import task_body
from loadtests.scenarios import ACCEPT_CONNECTIONS, accept_alone, bwrap_kill_floor, docker_floor
from loadtests.target import Target


def _ratio(value: float | None, floor: float | None) -> str | None:
    if not value or not floor:
        return None
    return f"{value / floor:.2f}x"


async def bare_floor(target: Target, requests: int) -> dict[str, Any]:
    """The bare endpoint's accept rate for ``requests`` spawn bodies (embedded system only:
    it needs the servers' URLs)."""
    if not (target.nats_url and target.valkey_url):
        return {"unavailable": "no NATS/Valkey URL (a --url target)"}
    plan = [{"tool": "finish", "input": {"summary": "nothing to do"}}]
    bodies = [task_body(str(target.repository), f"bare-{n}", plan) for n in range(requests)]
    return await bare.accept_rate(target.nats_url, target.valkey_url, bodies, ACCEPT_CONNECTIONS)


async def attach(name: str, target: Target, result: dict[str, Any], sandbox: str) -> None:
    """Measure ``name``'s floors now and put them and the ratios into ``result``."""
    if name in ("concurrency", "smoke"):
        agents = int(result["agents"])
        floor = await asyncio.to_thread(gitfloor.serial_git_cycles, agents)
        result["floor_serial_git_cycles"] = floor
        result["wall_over_serial_git"] = _ratio(result["wall_seconds"], floor["seconds"])
        _cpu_ratios(result, floor, "serial_git")
        if sandbox == "docker":
            docker = await asyncio.to_thread(docker_floor, 10, agents)
            result["floor_docker"] = docker
            start = docker.get("docker_create_start", {}).get("p50_ms")
            spawn = result["spawn_latency"].get("p50_ms")
            result["spawn_p50_over_docker_create_start"] = _ratio(spawn, start)
            # the burst asks the daemon for ``agents`` containers at once: so does this floor
            burst = docker.get(f"docker_create_start_{agents}_at_once", {}).get("p50_ms")
            result[f"spawn_p50_over_docker_{agents}_at_once"] = _ratio(spawn, burst)
    elif name == "dispatch":
        worktrees = await asyncio.to_thread(gitfloor.worktree_add_remove, 100)
        result["floor_worktree_add_remove"] = worktrees
        result["start_rate_over_worktree_rate"] = _ratio(
            result["dispatch_per_second"], worktrees["per_second"]
        )
        _cpu_ratios(result, worktrees, "worktree_add_remove")
        floor = await bare_floor(target, int(result["tasks"]))
        result["floor_bare_accept"] = floor
        result["accept_rate_over_bare"] = _ratio(
            result["accept_per_second"], floor.get("per_second")
        )
        # the bare endpoint runs alone; the gateway's accept above ran beside the agents
        # it was starting: the same requests again, intake held, compare like with like
        # (the embedded system only: a deployment's intake is never held by a load test)
        if target.supervisor is not None:
            alone = await accept_alone(target, int(result["tasks"]))
            result["accept_alone"] = alone
            result["accept_alone_over_bare"] = _ratio(
                alone.get("per_second"), floor.get("per_second")
            )
    elif name == "kill" and sandbox == "bwrap":
        floor = await bwrap_kill_floor(int(result["agents"]) - 1)
        result["floor_bwrap_kill_all"] = floor
        result["kill_all_over_bwrap_floor"] = _ratio(
            result["kill_all_seconds"], floor.get("seconds")
        )
    elif name == "kill" and sandbox == "docker":
        docker = await asyncio.to_thread(docker_floor)
        result["floor_docker"] = docker
        kill = docker.get("docker_kill", {}).get("p50_ms")
        result["kill_one_over_docker_kill"] = _ratio(result["kill_one_seconds"] * 1000, kill)


def _cpu_ratios(result: dict[str, Any], floor: dict[str, Any], name: str) -> None:
    """What the machine's CPU says of a scenario beside its git floor: CPU per agent over
    the floor's CPU per round, and the wall the CPU alone imposes (busy seconds over the
    cores) over the floor's time for as many rounds as the scenario had agents. When the
    second is already above a goal, no scheduling meets it without spending less CPU
    per agent."""
    machine = result.get("machine_cpu") or {}
    units = int(result.get("agents") or result.get("tasks") or 0)
    if not machine or not floor.get("rounds") or not units:
        return
    per_round_ms = 1000 * floor.get("cpu_seconds", 0.0) / floor["rounds"]
    floor_wall = floor["seconds"] * units / floor["rounds"]
    result[f"floor_{name}_cpu_ms_per_round"] = round(per_round_ms, 1)
    result[f"cpu_per_agent_over_{name}"] = _ratio(machine["cpu_ms_per_unit"], per_round_ms)
    result[f"cpu_bound_wall_over_{name}"] = _ratio(machine["cpu_bound_wall_seconds"], floor_wall)
