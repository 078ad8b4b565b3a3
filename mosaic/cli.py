"""``mosaic``: run the system embedded, serve one service, run the demo, or talk to a
running gateway (spawn, agents, status, kill, watch)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from shared.messages.gates import GateProfile
from shared.settings import HomeSettings

if TYPE_CHECKING:
    from mosaic.client import MosaicClient
    from mosaic.federation_client import FederationClient
    from shared.messages.agents import AgentEvent, AgentRecord


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home) if args.home else HomeSettings().mosaic_home


def cmd_up(args: argparse.Namespace) -> int:
    """Start NATS, Valkey (unless NATS_URL / VALKEY_URL are set) and the five services."""
    from mosaic.natsauth import redact
    from mosaic.spawners import any_ready, describe
    from mosaic.supervisor import Supervisor, SystemConfig, pick_gateway_port

    config = SystemConfig(
        home=_home(args),
        nats_url=os.environ.get("NATS_URL"),
        valkey_url=os.environ.get("VALKEY_URL"),
        gateway_port=pick_gateway_port(args.port or int(os.environ.get("GATEWAY_PORT", 0))),
    )
    supervisor = Supervisor(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    supervisor.start()
    try:
        print(f"Mosaic is up. Gateway: {supervisor.gateway_url}")
        print(f"  NATS:    {redact(supervisor.nats_url)}  (mosaic creds nats --user admin)")
        print(f"  Valkey:  {redact(supervisor.valkey_url)}")
        print(f"  Secrets: {config.home / 'secrets'} (api-token, admin-token, valkey-password)")
        print(f"  Logs:    {supervisor.logs}")
        health = supervisor.health()
        for line in describe(health):
            print(line if line.startswith("WARNING") else f"  Spawner: {line}")
        if not any_ready(health):
            print(
                "No spawner can run agents: POST /agents/spawn answers 503 until what is "
                "named above is installed or set (a sandbox is noticed when it starts "
                "working; a model setting needs `mosaic up` again).",
                file=sys.stderr,
            )
        print("Press Ctrl-C to stop.")
        while not stop.wait(1.0):
            for name, proc in supervisor.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited ({proc.returncode}); restarting", file=sys.stderr)
                    supervisor.start_service(name)
    finally:
        print("Stopping…")
        supervisor.stop()
    return 0


def cmd_creds_nats(args: argparse.Namespace) -> int:
    """Print the NATS URL with a user's credentials (for ``nats --server``)."""
    from mosaic.natsauth import user_url

    try:
        print(user_url(_home(args), args.user, args.server))
    except (FileNotFoundError, ValueError) as exc:
        print(f"mosaic creds nats: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run one service in the foreground (same as ``python -m services.<name>``)."""
    import runpy

    runpy.run_module(f"services.{args.service}", run_name="__main__")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Create a demo repository, start the system, run three tasks, show the branches."""
    from mosaic.demo import run_demo

    return run_demo(_home(args))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its help texts are the CLI's documentation)."""
    parser = argparse.ArgumentParser(
        prog="mosaic", description="Mosaic Orchestrator: run Claude coding agents safely at scale."
    )
    parser.add_argument("--home", help="data directory (default: $MOSAIC_HOME or ~/.mosaic)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the embedded system (NATS, Valkey, five services)")
    up.add_argument("--port", type=int, help="gateway port (default 3001, or a free one)")
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=["gateway", "spawner", "gitops", "gates", "killswitch"])
    serve.set_defaults(func=cmd_serve)

    creds = sub.add_parser("creds", help="print credentials of the embedded system")
    creds_sub = creds.add_subparsers(dest="what", required=True)
    creds_nats = creds_sub.add_parser(
        "nats", help="the NATS URL with a user's credentials, for `nats --server`"
    )
    creds_nats.add_argument(
        "--user", default="admin", help="admin (default) or a service: gateway, spawner, …"
    )
    creds_nats.add_argument(
        "--server", help="server URL without credentials (default: the one `mosaic up` runs)"
    )
    creds_nats.set_defaults(func=cmd_creds_nats)

    demo = sub.add_parser("demo", help="run three demo tasks end to end and stop")
    demo.set_defaults(func=cmd_demo)
    _add_client_commands(sub)
    _add_federation_commands(sub)
    return parser


# ---- client commands: talk to a running gateway over HTTP (mosaic.client) ----------


def _token(args: argparse.Namespace, admin: bool = False) -> str | None:
    """--token, else $MOSAIC_TOKEN, else the token file ``mosaic up`` wrote."""
    if args.token:
        return str(args.token)
    if os.environ.get("MOSAIC_TOKEN"):
        return os.environ["MOSAIC_TOKEN"]
    path = _home(args) / "secrets" / ("admin-token" if admin else "api-token")
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _client(args: argparse.Namespace, admin: bool = False) -> MosaicClient:
    from mosaic.client import MosaicClient

    return MosaicClient(args.url, _token(args, admin), timeout=args.timeout)


def _print_json(value: object) -> None:
    from pydantic import BaseModel

    def plain(item: object) -> object:
        return item.model_dump(mode="json", by_alias=True) if isinstance(item, BaseModel) else item

    data = [plain(v) for v in value] if isinstance(value, list) else plain(value)
    print(json.dumps(data, indent=2))


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _agent_rows(agents: Iterable[AgentRecord]) -> list[list[str]]:
    return [
        [
            a.agent_id,
            a.state.value,
            a.task_state.value,
            a.task_id,
            str(a.turns),
            str(a.tokens_used),
            a.last_tool or "-",
            _sandbox(a),
            a.model or a.provider or "-",
            _merge(a),
            a.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        ]
        for a in agents
    ]


def _merge(agent: AgentRecord) -> str:
    """Its place in the merge queue while it waits, the range it merged after."""
    if agent.merge_queue_position is not None:
        if agent.merge_queue_position == 1:
            return "queue #1 (merging)"
        return f"queue #{agent.merge_queue_position}"
    if agent.merged_range:
        old, _, new = agent.merged_range.partition("..")
        return f"merged {old[:7]}..{new[:7]}"
    return "-"


def _sandbox(agent: AgentRecord) -> str:
    if agent.sandbox is None:
        return "-"
    return f"{agent.sandbox} (UNSAFE)" if agent.unsafe else agent.sandbox


_AGENT_HEADER = [
    "AGENT",
    "STATE",
    "TASK STATE",
    "TASK",
    "TURNS",
    "TOKENS",
    "LAST TOOL",
    "SANDBOX",
    "MODEL",
    "MERGE",
    "CREATED",
]


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
    with _client(args) as client:
        spawned = client.spawn_agent(body)
    if args.json:
        _print_json(spawned)
    else:
        note = " (task already known)" if spawned.duplicate else ""
        print(f"{spawned.agent_id}  task {spawned.task_id}  {spawned.state}{note}")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    """List agents, newest first."""
    with _client(args) as client:
        page = client.list_agents(
            state=args.state, task_id=args.task_id, offset=args.offset, limit=args.limit
        )
    if args.json:
        _print_json(page)
        return 0
    if not page.agents:
        print("no agents")
        return 0
    print(_table(_agent_rows(page.agents), _AGENT_HEADER))
    shown = f"{page.offset + 1}-{page.offset + len(page.agents)}"
    print(f"\n{shown} of {page.total}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show one agent's record."""
    with _client(args) as client:
        record = client.get_agent_status(args.agent_id)
    if args.json:
        _print_json(record)
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
    with _client(args, admin=bool(args.all)) as client:
        results = client.kill_all_agents() if args.all else [client.kill_agent(args.agent_id)]
    done = all(r.killed or r.state in {"completed", "failed"} for r in results)
    if args.json:
        _print_json(results)
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
    with _client(args) as client:
        agents: dict[str, AgentRecord] = {}
        if args.agent:
            agents[args.agent] = client.get_agent_status(args.agent)
        else:
            for state in ("spawning", "running"):
                agents.update({a.agent_id: a for a in client.list_agents(state=state).agents})
        if redraw:
            _draw(agents, "connecting…")
        for event in client.events(agent_id=args.agent, since=args.since):
            record = agents.get(event.agent_id)
            if record is None or event.kind in ("state", "task_state", "gate"):
                record = client.get_agent_status(event.agent_id)
            else:
                record = record.model_copy(update=_progress_fields(event.detail))
            agents[event.agent_id] = record
            if redraw:
                _draw(agents, f"last event: {event.agent_id} #{event.seq} {_describe(event)}")
            else:
                stamp = event.at.strftime("%H:%M:%S")
                print(f"{stamp}  {event.agent_id}  #{event.seq:<4} {_describe(event)}", flush=True)
    return 0


def _progress_fields(detail: dict[str, Any]) -> dict[str, Any]:
    step = detail.get("step")
    if step == "turn_started":
        return {"turns": int(detail.get("turn", 0))}
    if step == "tool_called":
        return {"last_tool": str(detail.get("tool"))}
    if step == "tokens_used":
        return {"tokens_used": int(detail.get("total", 0))}
    return {}


def _describe(event: AgentEvent) -> str:
    detail = event.detail
    if event.kind in ("state", "task_state"):
        what = "agent" if event.kind == "state" else "task"
        arrow = f"{event.previous} -> " if event.previous else ""
        why = detail.get("error") or detail.get("reason") or ""
        return f"{what} {arrow}{event.state}" + (f" ({why})" if why else "")
    if event.kind == "progress":
        step = str(detail.get("step", "progress"))
        if step == "merge_queue":
            return f"merge queue #{detail.get('position')}"
        if step == "merged":
            return f"merged {detail.get('range')}"
        extra = detail.get("tool") or detail.get("turn") or detail.get("total") or ""
        return f"{step} {extra}".strip()
    if event.kind == "gate":
        phase = f"{detail['phase']} " if detail.get("phase") else ""
        return f"gates {phase}{'approved' if detail.get('approved') else 'rejected'}"
    if event.kind == "overlap":  # the conflict forecast (docs/git.md)
        files = "; ".join(str(f) for f in detail.get("files", []))
        return f"overlaps {detail.get('agentId')} ({detail.get('branch')}): {files}"
    return event.kind


def _draw(agents: dict[str, AgentRecord], footer: str) -> None:
    ordered = sorted(agents.values(), key=lambda a: a.created_at, reverse=True)
    body = _table(_agent_rows(ordered), _AGENT_HEADER) if ordered else "no live agents"
    sys.stdout.write("\x1b[H\x1b[2J" + "mosaic watch (Ctrl-C to stop)\n\n" + body)
    sys.stdout.write(f"\n\n{footer}\n")
    sys.stdout.flush()


def _add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("MOSAIC_URL", "http://127.0.0.1:3001"),
        help="gateway URL (default: $MOSAIC_URL or http://127.0.0.1:3001)",
    )
    common.add_argument(
        "--token",
        help="bearer token (default: $MOSAIC_TOKEN, else $MOSAIC_HOME/secrets/api-token, "
        "admin-token for kill --all)",
    )
    common.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

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


# ---- federation: this instance's identity, peers, and agents on peers ---------------


def _federation(args: argparse.Namespace, admin: bool = False) -> FederationClient:
    from mosaic.federation_client import FederationClient

    return FederationClient(args.url, _token(args, admin), timeout=args.timeout)


def cmd_federation_identity(args: argparse.Namespace) -> int:
    """Print this instance's id, public key and gateway URL (to give to a peer's admin).

    Asks the running gateway; without one, reads (or creates) the identity under
    ``$MOSAIC_HOME`` and prints ``--url``.
    """
    from mosaic.client import ClientError

    try:
        with _federation(args) as fed:
            info = fed.identity()
    except ClientError:
        from shared.federation.identity import load_or_create_identity
        from shared.federation.settings import FederationSettings

        settings = FederationSettings()
        identity = load_or_create_identity(_home(args), settings.mosaic_instance_id)
        url = settings.federation_public_url or args.url
        info = {"instanceId": identity.instance_id, "publicKey": identity.public_key, "url": url}
    if args.json:
        _print_json(info)
    else:
        print(f"instance id:  {info['instanceId']}")
        print(f"public key:   {info['publicKey']}")
        print(f"gateway URL:  {info['url']}")
        print(
            "\nOn the peer: mosaic federation peers add "
            f"{info['instanceId']} --peer-url {info['url']} --public-key {info['publicKey']}"
        )
    return 0


def _peer_rows(peers: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            p["peerId"],
            p["state"],
            p["url"],
            str(p["limits"]["maxAgents"]),
            ",".join(p["limits"]["allowedRepositories"]) or "-",
        ]
        for p in peers
    ]


def cmd_federation_peers(args: argparse.Namespace) -> int:
    """List, add, suspend or revoke peers (changes need the admin token)."""
    action = args.peers_action
    with _federation(args, admin=action != "list") as fed:
        if action == "list":
            peers = fed.peers()
        elif action == "add":
            peers = [
                fed.register_peer(
                    args.peer_id,
                    args.peer_url,
                    args.public_key,
                    max_agents=args.max_agents,
                    allowed_repositories=args.allow_repo,
                )
            ]
        elif action == "suspend":
            peers = [fed.suspend(args.peer_id)]
        else:
            peers = [fed.revoke(args.peer_id)]
    if args.json:
        _print_json(peers)
    elif not peers:
        print("no peers")
    else:
        print(_table(_peer_rows(peers), ["PEER", "STATE", "URL", "MAX AGENTS", "REPOSITORIES"]))
        if action == "add":
            print(f"\nNext: mosaic federation handshake {args.peer_id} (once the peer knows us)")
    return 0


def cmd_federation_handshake(args: argparse.Namespace) -> int:
    """Prove keys both ways with a registered peer and activate the connection."""
    with _federation(args, admin=True) as fed:
        peer = fed.handshake(args.peer_id)
    if args.json:
        _print_json(peer)
    else:
        print(f"{peer['peerId']}  {peer['state']}")
    return 0


def cmd_federation_spawn(args: argparse.Namespace) -> int:
    """Queue a task on a peer and print the remote agent's id."""
    body: dict[str, Any] = {
        "taskId": args.task_id or f"cli-{uuid.uuid4().hex[:12]}",
        "agentType": args.type,
        "context": {"repository": args.repo, "branch": args.branch, "workItems": args.item},
        "priority": args.priority,
    }
    if args.profile:
        body["gateProfile"] = args.profile
    options: dict[str, Any] = {}
    if args.timeout_s:
        options["timeout"] = args.timeout_s
    if args.plan:
        options["plan"] = json.loads(Path(args.plan).read_text())
    if options:
        body["options"] = options
    with _federation(args) as fed:
        spawned = fed.spawn(args.peer_id, body)
    if args.json:
        _print_json(spawned)
    else:
        note = " (task already known)" if spawned.get("duplicate") else ""
        print(f"{spawned['agentId']}  on {spawned['peerId']}  {spawned['state']}{note}")
    return 0


def cmd_federation_status(args: argparse.Namespace) -> int:
    """Show an agent running on a peer."""
    with _federation(args) as fed:
        status = fed.status(args.peer_id, args.agent_id)
    if args.json:
        _print_json(status)
        return 0
    print(f"{'instance':>22}  {status['peerId']}")
    for name, value in status["agent"].items():
        if value not in (None, [], ""):
            shown = json.dumps(value) if isinstance(value, list | dict) else value
            print(f"{name:>22}  {shown}")
    return 0


def cmd_federation_kill(args: argparse.Namespace) -> int:
    """Kill an agent on a peer, or with --all every agent here and on every active peer."""
    if args.all == bool(args.peer_id and args.agent_id):
        print("mosaic federation kill: give PEER AGENT, or --all", file=sys.stderr)
        return 2
    with _federation(args, admin=args.all) as fed:
        result = fed.kill_all() if args.all else fed.kill(args.peer_id, args.agent_id)
    if args.json:
        _print_json(result)
        return 0
    if not args.all:
        verdict = "killed" if result["killed"] else f"still {result['state']}"
        print(f"{result['agentId']}  on {result['peerId']}  {verdict}")
        return 0 if result["killed"] or result["state"] in {"completed", "failed"} else 1
    ok = True
    for agent in result["local"]:
        print(f"{result['instance']}  {agent['agentId']}  {agent['state']}")
    for peer in result["peers"]:
        if not peer["ok"]:
            ok = False
            print(f"{peer['peerId']}  FAILED ({peer['status']}): {peer['error']}")
        for agent in peer["agents"]:
            print(f"{peer['peerId']}  {agent['agentId']}  {agent['state']}")
    return 0 if ok else 1


def cmd_federation_agents(args: argparse.Namespace) -> int:
    """List agents this instance spawned on peers, with their instance."""
    with _federation(args) as fed:
        listed = fed.agents(args.peer)
    if args.json:
        _print_json(listed)
        return 0
    rows = [
        [a["peerId"], a["agentId"], a["state"], a["taskId"], a["createdAt"][:19]]
        for a in listed["agents"]
    ]
    print(_table(rows, ["INSTANCE", "AGENT", "STATE", "TASK", "CREATED"]) if rows else "none")
    return 0


def _add_federation_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("MOSAIC_URL", "http://127.0.0.1:3001"),
        help="this instance's gateway URL (default: $MOSAIC_URL or http://127.0.0.1:3001)",
    )
    common.add_argument(
        "--token",
        help="bearer token (default: $MOSAIC_TOKEN, else $MOSAIC_HOME/secrets/api-token, "
        "admin-token for peer changes, handshake and kill --all)",
    )
    common.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout in seconds")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    fed = sub.add_parser(
        "federation", help="signed commands to other Mosaic instances (see docs/federation.md)"
    )
    fsub = fed.add_subparsers(dest="federation_command", required=True)

    ident = fsub.add_parser("identity", parents=[common], help="print id, public key and URL")
    ident.set_defaults(func=cmd_federation_identity)

    peers = fsub.add_parser("peers", help="list, add, suspend or revoke peers")
    psub = peers.add_subparsers(dest="peers_action", required=True)
    psub.add_parser("list", parents=[common], help="registered peers").set_defaults(
        func=cmd_federation_peers
    )
    add = psub.add_parser("add", parents=[common], help="register a peer (admin)")
    add.add_argument("peer_id", help="the peer's instance id")
    add.add_argument("--peer-url", required=True, help="the peer's gateway URL")
    add.add_argument("--public-key", required=True, help="the peer's public key (base64)")
    add.add_argument("--max-agents", type=int, help="concurrent agents the peer may run here")
    add.add_argument(
        "--allow-repo",
        action="append",
        help="a repository glob or prefix the peer may use here (repeatable; none: nothing)",
    )
    add.set_defaults(func=cmd_federation_peers)
    for action in ("suspend", "revoke"):
        change = psub.add_parser(action, parents=[common], help=f"{action} a peer (admin)")
        change.add_argument("peer_id")
        change.set_defaults(func=cmd_federation_peers)

    shake = fsub.add_parser("handshake", parents=[common], help="activate a peer (admin)")
    shake.add_argument("peer_id")
    shake.set_defaults(func=cmd_federation_handshake)

    spawn = fsub.add_parser("spawn", parents=[common], help="queue a task on a peer")
    spawn.add_argument("peer_id")
    spawn.add_argument("--repo", required=True, help="repository as the peer sees it")
    spawn.add_argument("--branch", default="main")
    spawn.add_argument("--item", action="append", required=True, help="a work item (repeatable)")
    spawn.add_argument("--priority", type=int, default=5)
    spawn.add_argument("--profile", choices=get_args(GateProfile))
    spawn.add_argument("--type", choices=["worker", "reviewer", "tester"], default="worker")
    spawn.add_argument("--task-id")
    spawn.add_argument("--timeout-s", type=int, help="the agent's wall-clock bound in seconds")
    spawn.add_argument("--plan", help="a JSON file with a scripted plan (offline runs)")
    spawn.set_defaults(func=cmd_federation_spawn)

    status = fsub.add_parser("status", parents=[common], help="show an agent on a peer")
    status.add_argument("peer_id")
    status.add_argument("agent_id")
    status.set_defaults(func=cmd_federation_status)

    kill = fsub.add_parser("kill", parents=[common], help="kill an agent on a peer, or --all")
    kill.add_argument("peer_id", nargs="?")
    kill.add_argument("agent_id", nargs="?")
    kill.add_argument(
        "--all", action="store_true", help="kill every agent here and those we spawned on peers"
    )
    kill.set_defaults(func=cmd_federation_kill)

    agents = fsub.add_parser("agents", parents=[common], help="agents we spawned on peers")
    agents.add_argument("--peer", help="only this peer's")
    agents.set_defaults(func=cmd_federation_agents)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mosaic`` console script."""
    args = build_parser().parse_args(argv)
    from mosaic.client import ClientError
    from mosaic.supervisor import StartupError

    try:
        return int(args.func(args))
    except ClientError as exc:
        field = f" (field: {exc.field})" if exc.field else ""
        print(f"mosaic {args.command}: {exc}{field}", file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"mosaic {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
