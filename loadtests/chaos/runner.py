"""``python -m loadtests chaos``: each scenario on a fresh embedded system, one table.

A fresh system per scenario: a kill-all hold, a restarted server or a second spawner
must not colour the next scenario's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loadtests import report
from loadtests.chaos import scenarios
from loadtests.chaos.checks import Check
from loadtests.chaos.evidence import enable_push_log
from loadtests.chaos.stage import CHAOS_ENV, Stage
from loadtests.scenarios import http_client
from loadtests.target import embedded, make_repository

SCENARIOS = ("spawner", "gitops", "gates", "nats", "valkey", "partition", "kill-all")

SLOW_TESTS = "sleep 2 && python3 -m unittest discover -q"
"""The gates scenario's tests gate: two seconds long, so that a kill lands mid-request."""

Plan = Callable[[Stage], Awaitable[scenarios.Result]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The chaos options of ``python -m loadtests`` (the help texts are the documentation)."""
    group = parser.add_argument_group("chaos")
    group.add_argument("--kills", type=int, default=100, help="SIGKILLs of the spawner (chaos)")
    group.add_argument(
        "--service-kills", type=int, default=20, help="SIGKILLs of gitops and of gates (chaos)"
    )
    group.add_argument(
        "--restarts", type=int, default=3, help="restarts of nats-server and valkey-server"
    )
    group.add_argument(
        "--kill-every",
        type=float,
        default=3.0,
        help="before each fault the suite waits for one more task to end, then a random "
        "0.2 to 2x this many seconds (chaos)",
    )
    group.add_argument(
        "--lease",
        type=float,
        default=float(CHAOS_ENV["TASK_ACK_WAIT_S"]),
        help="the spawner's lease (its ack wait in the chaos system): a spawner cut from "
        "NATS must have ended its sandboxes within it (+1 s to notice and kill)",
    )
    group.add_argument(
        "--cut", type=float, default=10.0, help="seconds the partition lasts (> the lease)"
    )
    group.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated chaos scenarios to run, of: {', '.join(SCENARIOS)}",
    )


def _plans(args: argparse.Namespace) -> dict[str, Plan]:
    m, every, timeout = args.agents, args.kill_every, args.timeout
    return {
        "spawner": lambda s: scenarios.service_kills(s, "spawner", args.kills, m, every, timeout),
        "gitops": lambda s: scenarios.service_kills(
            s, "gitops", args.service_kills, m, every, timeout
        ),
        "gates": lambda s: scenarios.service_kills(
            s, "gates", args.service_kills, m, every, timeout
        ),
        "nats": lambda s: scenarios.server_restarts(s, "nats", args.restarts, m, every, timeout),
        "valkey": lambda s: scenarios.server_restarts(
            s, "valkey", args.restarts, m, every, timeout
        ),
        "partition": lambda s: scenarios.partition(s, m, args.lease, args.cut, timeout),
        "kill-all": lambda s: scenarios.kill_all(s, m, every, timeout),
    }


async def _on(stage_args: tuple[Any, ...], plan: Plan) -> scenarios.Result:
    target, home, remote = stage_args
    assert target.supervisor is not None
    async with http_client(target) as http, http_client(target, admin=True) as admin:
        stage = Stage(target, target.supervisor, home, remote, http, admin)
        return await plan(stage)


def run_one(name: str, plan: Plan, sandbox: str, slots: int) -> scenarios.Result:
    """One scenario on its own embedded system."""
    with tempfile.TemporaryDirectory(prefix=f"mosaic-chaos-{name}-") as tmp:
        home = Path(tmp)
        chaos = home / "chaos"
        remote = make_repository(chaos, SLOW_TESTS) if name == "gates" else make_repository(chaos)
        enable_push_log(remote)
        with embedded(home, sandbox, slots, CHAOS_ENV) as target:
            try:
                return asyncio.run(_on((target, home, remote), plan))
            finally:
                sys.stderr.write("\n")


def table(rows: list[Check]) -> str:
    """The chaos table: scenario, check, figure, target, pass/fail."""
    lines = []
    width = max((len(r.name) for r in rows), default=0)
    scenario = None
    for row in rows:
        if row.scenario != scenario:
            scenario = row.scenario
            lines.append(f"\n{scenario}")
        mark = "    " if row.passed is None else ("PASS" if row.passed else "FAIL")
        lines.append(f"  {mark}  {row.name.ljust(width)}  {row.figure}  (target {row.target})")
    return "\n".join(lines)


def markdown(rows: list[Check]) -> str:
    """The chaos table as Markdown, for docs/reliability.md."""
    lines = ["| scenario | check | figure | target | result |", "|---|---|---|---|---|"]
    for row in rows:
        mark = "" if row.passed is None else ("PASS" if row.passed else "**FAIL**")
        figure = row.figure.replace("|", "\\|")
        lines.append(f"| {row.scenario} | {row.name} | {figure} | {row.target} | {mark} |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace, command: str) -> int:
    """Run the chosen scenarios; print the table; 0 only if every check passed."""
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        print(f"unknown chaos scenario(s): {', '.join(unknown)}; of {SCENARIOS}", file=sys.stderr)
        return 2
    plans = _plans(args)
    rows: list[Check] = []
    raw: dict[str, Any] = {}
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    for name in chosen:
        print(f"chaos: {name} ({args.agents} agents, {args.sandbox})…", file=sys.stderr)
        t0 = time.monotonic()
        try:
            checks, figures = run_one(name, plans[name], args.sandbox, args.agents)
        except Exception as exc:  # a scenario that could not run is a failed scenario
            checks = [Check(name, "scenario ran", f"{type(exc).__name__}: {exc}", "ran", False)]
            figures = {}
        figures["seconds"] = round(time.monotonic() - t0, 1)
        rows += checks
        raw[name] = figures
        print(table(checks), file=sys.stderr)
    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "chaos.json"
    result = {
        "command": command,
        "started": started,
        "machine": report.machine(),
        "checks": [r.as_dict() for r in rows],
        "figures": raw,
    }
    path.write_text(json.dumps(result, indent=2, default=str))
    (out / "chaos.md").write_text(markdown(rows))
    failed = [r for r in rows if r.passed is False]
    print(f"\nchaos ({args.agents} agents, {args.sandbox} sandbox, started {started})")
    print(table(rows))
    print(f"\n{len(rows) - len(failed)} of {len(rows)} checks passed; results: {path} (and .md)")
    return 1 if failed else 0
