"""Agents on a running gateway: ``spawn``, ``agents``, ``status``, ``kill``, ``watch``."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import TYPE_CHECKING, Any, get_args

from mosaic.cli.common import client_options, connect, print_json, table
from mosaic.cli.views import AGENT_HEADER, agent_rows, describe, draw, progress_fields
from shared.messages.gates import GateProfile

if TYPE_CHECKING:
    from shared.messages.agents import AgentRecord


def cmd_spawn(args: argparse.Namespace) -> int:
    """Queue a task and print its agent id."""
    body: dict[str, Any] = {
        "taskId": args.task_id or f"cli-{uuid.uuid4().hex[:12]}",
        "agentType": args.type,
        "context": {
            "repository": args.repo,
            "branch": args.branch,
            "workItems": args.item,
            "skills": args.skill or [],
        },
        "priority": args.priority,
    }
    if args.profile:
        body["gateProfile"] = args.profile
    options: dict[str, Any] = {}
    if args.timeout_s:
        options["timeout"] = args.timeout_s
    if args.merge != "none":
        options["merge"] = args.merge
    budget = {
        k: v for k, v in (("tokens", args.budget_tokens), ("usd", args.budget_usd)) if v is not None
    }
    if budget:
        options["budget"] = budget
    if options:
        body["options"] = options
    with connect(args) as client:
        spawned = client.spawn_agent(body)
    if args.json:
        print_json(spawned)
    else:
        note = " (task already known)" if spawned.duplicate else ""
        print(f"{spawned.agent_id}  task {spawned.task_id}  {spawned.state}{note}")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    """List agents, newest first."""
    with connect(args) as client:
        page = client.list_agents(
            state=args.state, task_id=args.task_id, offset=args.offset, limit=args.limit
        )
    if args.json:
        print_json(page)
        return 0
    if not page.agents:
        print("no agents")
        return 0
    print(table(agent_rows(page.agents), AGENT_HEADER))
    shown = f"{page.offset + 1}-{page.offset + len(page.agents)}"
    print(f"\n{shown} of {page.total}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show one agent's record."""
    with connect(args) as client:
        record = client.get_agent_status(args.agent_id)
    if args.json:
        print_json(record)
        return 0
    for name, value in record.model_dump(mode="json").items():
        if value not in (None, [], ""):
            shown = json.dumps(value) if isinstance(value, list | dict) else value
            print(f"{name:>22}  {shown}")
    if record.unsafe:
        print("WARNING: this agent ran without a sandbox (MOSAIC_SANDBOX=none): its commands")
        print("         ran as bare host processes, with this user's rights.")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    """Kill one agent, or every agent with --all (admin token)."""
    if bool(args.all) == bool(args.agent_id):
        print("mosaic kill: give an agent id or --all", file=sys.stderr)
        return 2
    with connect(args, admin=bool(args.all)) as client:
        results = client.kill_all_agents() if args.all else [client.kill_agent(args.agent_id)]
    done = all(r.killed or r.state in {"completed", "failed"} for r in results)
    if args.json:
        print_json(results)
        return 0 if done else 1
    if args.all and not results:
        print("no live agents")
    for result in results:
        verdict = "killed" if result.killed else f"still {result.state}"
        print(f"{result.agent_id}  {verdict}  ({result.elapsed_ms:.0f} ms)")
    return 0 if done else 1


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow the live feed: a table that redraws on a terminal, else one line per event."""
    redraw = sys.stdout.isatty()
    with connect(args) as client:
        agents: dict[str, AgentRecord] = {}
        if args.agent:
            agents[args.agent] = client.get_agent_status(args.agent)
        else:
            for state in ("spawning", "running"):
                agents.update({a.agent_id: a for a in client.list_agents(state=state).agents})
        if redraw:
            draw(agents, "connecting…")
        for event in client.events(agent_id=args.agent, since=args.since):
            record = agents.get(event.agent_id)
            if record is None or event.kind in ("state", "task_state", "gate"):
                record = client.get_agent_status(event.agent_id)
            else:
                record = record.model_copy(update=progress_fields(event.detail))
            agents[event.agent_id] = record
            if redraw:
                draw(agents, f"last event: {event.agent_id} #{event.seq} {describe(event)}")
            else:
                stamp = event.at.strftime("%H:%M:%S")
                print(f"{stamp}  {event.agent_id}  #{event.seq:<4} {describe(event)}", flush=True)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = client_options(timeout=30.0, admin_for="kill --all")

    spawn = sub.add_parser("spawn", parents=[common], help="queue a task for an agent")
    spawn.add_argument("--repo", required=True, help="repository: absolute path or URL")
    spawn.add_argument("--branch", default="main", help="base branch (default main)")
    spawn.add_argument(
        "--item", action="append", required=True, help="a work item (repeat for several)"
    )
    spawn.add_argument("--skill", action="append", help="a skill hint (repeatable)")
    spawn.add_argument("--priority", type=int, default=5, help="1 (highest) to 10 (default 5)")
    spawn.add_argument("--profile", choices=get_args(GateProfile), help="gate profile")
    spawn.add_argument("--type", choices=["worker", "reviewer", "tester"], default="worker")
    spawn.add_argument(
        "--task-id", help="task id (default: generated); a known id is not re-queued"
    )
    spawn.add_argument("--timeout-s", type=int, help="the agent's wall-clock bound in seconds")
    spawn.add_argument(
        "--merge",
        choices=["none", "queue"],
        default="none",
        help="after the gates pass: push the agent's branch only (none, the default), or "
        "also merge it into the base through the repository's merge queue (queue)",
    )
    spawn.add_argument(
        "--budget-tokens",
        type=int,
        help="stop the task once its model calls used this many tokens (failed, reason budget)",
    )
    spawn.add_argument(
        "--budget-usd",
        type=float,
        help="stop the task once its model calls cost this many US dollars (reviewer included)",
    )
    spawn.set_defaults(func=cmd_spawn)

    agents = sub.add_parser("agents", parents=[common], help="list agents, newest first")
    agents.add_argument("--state", choices=["spawning", "running", "completed", "failed", "killed"])
    agents.add_argument("--task-id", help="only the agent of this task")
    agents.add_argument("--offset", type=int, default=0)
    agents.add_argument("--limit", type=int, default=50)
    agents.set_defaults(func=cmd_agents)

    status = sub.add_parser("status", parents=[common], help="show one agent")
    status.add_argument("agent_id")
    status.set_defaults(func=cmd_status)

    kill = sub.add_parser("kill", parents=[common], help="kill one agent, or all with --all")
    kill.add_argument("agent_id", nargs="?")
    kill.add_argument("--all", action="store_true", help="kill every live agent (admin token)")
    kill.set_defaults(func=cmd_kill)

    watch = sub.add_parser("watch", parents=[common], help="follow agents live (SSE feed)")
    watch.add_argument("--agent", help="only this agent")
    watch.add_argument("--since", type=int, help="with --agent: replay events after this seq")
    watch.set_defaults(func=cmd_watch)

    from mosaic.dispatch import add_command as add_dispatch

    add_dispatch(sub, common, cmd_dispatch)


def cmd_dispatch(args: argparse.Namespace) -> int:
    """Pre-check a batch of tasks and queue those that pass (``mosaic/dispatch.py``)."""
    from mosaic.dispatch import run

    return run(args, connect(args))
