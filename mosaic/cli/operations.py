"""Operating a running gateway: ``queue``, ``audit``, ``hold``, ``resume``, ``events``,
``check``: every HTTP operation that is not about spawning or killing has its command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

from mosaic.cli.common import client_options, connect, print_json, table
from mosaic.cli.views import describe
from shared.messages.gates import GatePhase, GateProfile
from shared.messages.http import HoldStatus


def cmd_queue(args: argparse.Namespace) -> int:
    """Waiting and in-flight tasks per priority, and how many tasks are in each state."""
    with connect(args) as http:
        stats = http.queue_stats()
    if args.json:
        print_json(stats)
        return 0
    print(
        f"waiting {stats['waiting']}  in flight {stats['inFlight']}  pending {stats['pending']}"
        f"  active {stats['active']}  completed {stats['completed']}  failed {stats['failed']}"
    )
    bands = [b for b in stats["byPriority"] if b["waiting"] or b["inFlight"]]
    if bands:
        rows = [[str(b["priority"]), str(b["waiting"]), str(b["inFlight"])] for b in bands]
        print("\n" + table(rows, ["PRIORITY", "WAITING", "IN FLIGHT"]))
    return 0


def _hold_line(hold: HoldStatus) -> str:
    if not hold.held:
        return "no hold: queued tasks start"
    by = f" by {hold.requested_by}" if hold.requested_by else ""
    at = f" at {hold.at}" if hold.at else ""
    why = f": {hold.reason}" if hold.reason else ""
    what = "the daily budget is spent" if hold.kind == "budget" else "kill-all"
    return f"HELD ({what}){by}{at}{why} (no queued task starts; `mosaic resume` lifts it)"


def cmd_hold(args: argparse.Namespace) -> int:
    """Whether intake is held (a kill-all in force, or the day's budget spent)."""
    with connect(args) as http:
        hold = http.hold_status()
    if args.json:
        print_json(hold)
    else:
        print(_hold_line(hold))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Lift a kill-all: queued tasks start again (admin token)."""
    with connect(args, admin=True) as http:
        hold = http.resume()
    if args.json:
        print_json(hold)
    else:
        print("resumed: " + _hold_line(hold))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Audited acts, newest first."""
    with connect(args) as http:
        entries = http.audit(kind=args.kind, agent_id=args.agent, limit=args.limit)
    if args.json:
        print_json(entries)
        return 0
    if not entries:
        print("no audit entries")
        return 0
    rows = [
        [
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.kind,
            e.actor,
            e.agent_id or "-",
            e.reason or "-",
        ]
        for e in entries
    ]
    print(table(rows, ["AT", "KIND", "ACTOR", "AGENT", "REASON"]))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    """One agent's stored event history, in order (``watch --agent`` follows it live)."""
    with connect(args) as http:
        history = http.get_agent_events(args.agent_id)
    if args.json:
        print_json(history)
        return 0
    for event in history:
        stamp = event.at.strftime("%H:%M:%S")
        print(f"{stamp}  #{event.seq:<4} {describe(event)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run a gate profile on an agent's worktree, or on a worktree path; exit 1 if rejected."""
    body: dict[str, Any] = {"phase": args.phase}
    if args.agent:
        body["agentId"] = args.agent
    if args.worktree:
        body["worktree"] = str(Path(args.worktree).absolute())
    if args.profile:
        body["profile"] = args.profile
    if args.base:
        body["base"] = args.base
    if args.item:
        body["workItems"] = args.item
    with connect(args) as http:
        decision = http.quality_check(body)
    if args.json:
        print_json(decision)
        return 0 if decision.approved else 1
    verdict = "approved" if decision.approved else "rejected"
    print(f"{verdict}{' (YOLO)' if decision.yolo else ''}: {decision.summary}".rstrip(": "))
    rows = [
        [r.name, r.status, f"{r.duration_ms} ms", _first_line(r.excerpt)] for r in decision.results
    ]
    if rows:
        print("\n" + table(rows, ["GATE", "STATUS", "TIME", "OUTPUT"]))
    if decision.error is not None:
        print(f"\nerror: {decision.error.message}")
    return 0 if decision.approved else 1


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "-"
    return line if len(line) <= 80 else line[:77] + "..."


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = client_options(timeout=30.0, admin_for="resume")

    queue = sub.add_parser("queue", parents=[common], help="queue depth and task counts")
    queue.set_defaults(func=cmd_queue)

    hold = sub.add_parser(
        "hold", parents=[common], help="whether intake is held (kill-all, daily budget)"
    )
    hold.set_defaults(func=cmd_hold)

    resume = sub.add_parser(
        "resume",
        parents=[common],
        help="lift a hold (kill-all, daily budget): queued tasks start (admin token)",
    )
    resume.set_defaults(func=cmd_resume)

    audit = sub.add_parser("audit", parents=[common], help="audited acts, newest first")
    audit.add_argument("--kind", help="only this kind: kill, kill_all, resume, gate_skipped, …")
    audit.add_argument("--agent", help="only this agent's")
    audit.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    audit.set_defaults(func=cmd_audit)

    events = sub.add_parser("events", parents=[common], help="one agent's event history")
    events.add_argument("agent_id")
    events.set_defaults(func=cmd_events)

    check = sub.add_parser(
        "check",
        parents=[common],
        help="run the gates on an agent's worktree or a path (POST /api/quality/check)",
    )
    target = check.add_mutually_exclusive_group(required=True)
    target.add_argument("--agent", help="the live agent whose worktree to check")
    target.add_argument("--worktree", help="a worktree path under the data directory")
    check.add_argument("--profile", choices=get_args(GateProfile), help="gate profile")
    check.add_argument("--phase", choices=get_args(GatePhase), default="pre-commit")
    check.add_argument("--base", help="base branch or commit to compare against")
    check.add_argument("--item", action="append", help="a work item (repeatable)")
    check.set_defaults(func=cmd_check)
