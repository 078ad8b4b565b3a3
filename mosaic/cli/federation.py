"""Federation: this instance's identity, its peers, and agents it runs on peers."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from mosaic.cli.common import client_options, home, print_json, table, token
from shared.messages.gates import GateProfile

if TYPE_CHECKING:
    from mosaic.federation_client import FederationClient


def federation(args: argparse.Namespace, admin: bool = False) -> FederationClient:
    from mosaic.federation_client import FederationClient

    return FederationClient(args.url, token(args, admin), timeout=args.timeout)


def cmd_federation_identity(args: argparse.Namespace) -> int:
    """Print this instance's id, public key and gateway URL (to give to a peer's admin).

    Asks the running gateway; without one, reads (or creates) the identity under
    ``$MOSAIC_HOME`` and prints ``--url``.
    """
    from mosaic.client import ClientError

    try:
        with federation(args) as fed:
            info = fed.identity()
    except ClientError:
        from shared.federation.identity import load_or_create_identity
        from shared.federation.settings import FederationSettings

        settings = FederationSettings()
        identity = load_or_create_identity(home(args), settings.mosaic_instance_id)
        url = settings.federation_public_url or args.url
        info = {"instanceId": identity.instance_id, "publicKey": identity.public_key, "url": url}
    if args.json:
        print_json(info)
    else:
        print(f"instance id:  {info['instanceId']}")
        print(f"public key:   {info['publicKey']}")
        print(f"gateway URL:  {info['url']}")
        print(
            "\nOn the peer: mosaic federation peers add "
            f"{info['instanceId']} --peer-url {info['url']} --public-key {info['publicKey']}"
        )
    return 0


def peer_rows(peers: list[dict[str, Any]]) -> list[list[str]]:
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
    with federation(args, admin=action != "list") as fed:
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
        print_json(peers)
    elif not peers:
        print("no peers")
    else:
        print(table(peer_rows(peers), ["PEER", "STATE", "URL", "MAX AGENTS", "REPOSITORIES"]))
        if action == "add":
            print(f"\nNext: mosaic federation handshake {args.peer_id} (once the peer knows us)")
    return 0


def cmd_federation_handshake(args: argparse.Namespace) -> int:
    """Prove keys both ways with a registered peer and activate the connection."""
    with federation(args, admin=True) as fed:
        peer = fed.handshake(args.peer_id)
    if args.json:
        print_json(peer)
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
    with federation(args) as fed:
        spawned = fed.spawn(args.peer_id, body)
    if args.json:
        print_json(spawned)
    else:
        note = " (task already known)" if spawned.get("duplicate") else ""
        print(f"{spawned['agentId']}  on {spawned['peerId']}  {spawned['state']}{note}")
    return 0


def cmd_federation_status(args: argparse.Namespace) -> int:
    """Show an agent running on a peer."""
    with federation(args) as fed:
        status = fed.status(args.peer_id, args.agent_id)
    if args.json:
        print_json(status)
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
    with federation(args, admin=args.all) as fed:
        result = fed.kill_all() if args.all else fed.kill(args.peer_id, args.agent_id)
    if args.json:
        print_json(result)
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
    with federation(args) as fed:
        listed = fed.agents(args.peer)
    if args.json:
        print_json(listed)
        return 0
    rows = [
        [a["peerId"], a["agentId"], a["state"], a["taskId"], a["createdAt"][:19]]
        for a in listed["agents"]
    ]
    print(table(rows, ["INSTANCE", "AGENT", "STATE", "TASK", "CREATED"]) if rows else "none")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = client_options(timeout=60.0, admin_for="peer changes, handshake and kill --all")

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
