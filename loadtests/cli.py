"""``python -m loadtests SCENARIO``: start the system (or use a given one), measure, report."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtests import precheck, ratios, report, scenarios
from loadtests.chaos import runner as chaos
from loadtests.resources import Sampler
from loadtests.target import Target, embedded, make_repository

SCENARIOS = ("concurrency", "dispatch", "kill", "baseline", "precheck", "smoke", "chaos")


def build_parser() -> argparse.ArgumentParser:
    """Arguments (the help texts are the documentation)."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtests",
        description="Measure Mosaic: spawn latency, dispatch throughput, kill latency, floors; "
        "and the system under repeated faults (chaos).",
    )
    parser.add_argument(
        "scenario",
        choices=SCENARIOS,
        help="smoke = concurrency with 10 agents; fails only on errors or lost tasks. "
        "precheck = POST /agents/check latency (cold, sequential, parallel) beside its floor. "
        "chaos = faults while agents run (SIGKILLs, server restarts, a partition, kill-all), "
        "a table of figures with pass/fail; exits 1 if any check failed",
    )
    parser.add_argument(
        "--agents",
        type=int,
        help="agents (or tasks for dispatch; agents kept running for chaos; precheck makes "
        "5x this many checks); 10, chaos 20",
    )
    parser.add_argument(
        "--sandbox",
        choices=("bwrap", "docker", "none"),
        default="bwrap",
        help="MOSAIC_SANDBOX of the embedded system (none: bare host processes, unsafe)",
    )
    parser.add_argument(
        "--warm",
        type=int,
        default=0,
        help="MOSAIC_SANDBOX_WARM of the embedded docker system: concurrency first runs one "
        "agent and waits for this many warm containers, then measures its burst",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the run")
    parser.add_argument(
        "--out", type=Path, default=Path("loadtests/results"), help="where JSON and PNG results go"
    )
    parser.add_argument("--url", help="a running gateway instead of the embedded system")
    parser.add_argument("--token", help="operator token for --url")
    parser.add_argument("--admin-token", help="admin token for --url (kill scenario)")
    parser.add_argument("--repository", help="repository the agents use with --url")
    chaos.add_arguments(parser)
    return parser


async def _run(name: str, target: Target, args: argparse.Namespace) -> dict[str, Any]:
    result = await _scenario(name, target, args)
    await ratios.attach(name, target, result, args.sandbox)
    return result


async def _scenario(name: str, target: Target, args: argparse.Namespace) -> dict[str, Any]:
    if name in ("concurrency", "smoke"):
        return await scenarios.concurrency(target, args.agents, args.timeout, args.warm)
    if name == "dispatch":
        return await scenarios.dispatch(target, args.agents, args.timeout)
    if name == "kill":
        return await scenarios.kill(target, args.agents, args.timeout, args.sandbox)
    if name == "precheck":
        async with scenarios.http_client(target) as http:
            return await precheck.precheck(http, target, args.agents * 5)
    return await scenarios.baseline(target)


def main(argv: list[str] | None = None) -> int:
    """Run one scenario and print its table; exit 1 only on errors or lost tasks."""
    args = build_parser().parse_args(argv)
    name = args.scenario
    args.agents = args.agents or (20 if name == "chaos" else 10)
    command = "python -m loadtests " + " ".join(argv if argv is not None else sys.argv[1:])
    if name == "chaos":
        if args.url:
            print("chaos kills and restarts processes: it runs on the embedded system only")
            return 2
        return chaos.main(args, command)
    if name == "smoke":
        args.agents = min(args.agents, 10)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out / stamp
    with tempfile.TemporaryDirectory(prefix="mosaic-load-") as tmp:
        if args.url:
            target = Target(
                url=args.url,
                api_token=args.token or "",
                admin_token=args.admin_token or "",
                repository=Path(args.repository or make_repository(Path(tmp))),
            )
            result = asyncio.run(_run(name, target, args))
        else:
            slots = max(args.agents, 10)
            print(
                f"Starting the embedded system ({args.sandbox} sandbox, {slots} slots)…",
                file=sys.stderr,
            )
            warm = {"MOSAIC_SANDBOX_WARM": str(args.warm)} if args.warm else None
            with (
                embedded(Path(tmp), args.sandbox, slots, warm) as target,
                Sampler(target.pids) as sampler,
            ):
                result = asyncio.run(_run(name, target, args))
            result["resources"] = sampler.report()
    result["machine"] = report.machine()
    result["command"] = command
    path = report.write(out, name, result)
    picture = report.plot(out, name, result)
    print(f"\n{name} ({args.agents} agents, {args.sandbox} sandbox)")
    print(report.table(result))
    print(f"\nresults: {path}" + (f", plot: {picture}" if picture else ""))
    bad = (
        result.get("lost", 0)
        or result.get("failed", 0)
        or result.get("submit_errors")
        or result.get("errors")
        or result.get("unfinished")
    )
    return 1 if bad else 0
