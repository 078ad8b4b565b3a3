"""``mosaic dispatch FILE``: a batch of tasks, each pre-checked, only the runnable queued.

The file (YAML, or JSON when it ends in ``.json``) is either a list of spawn requests
(the body of ``POST /agents/spawn``) or a mapping::

    defaults:            # merged into every task; the task's own values win
      context: {repository: /srv/repos/shop.git, branch: main}
      gateProfile: standard
    tasks:
      - taskId: shop-101
        context: {workItems: ["Add a /health endpoint"]}
      - context: {workItems: ["Fix the typo in README.md"]}

Mappings (``context``, ``options``) merge key by key; lists and scalars are replaced. A
task without ``taskId`` gets ``batch-<hash>`` from the file's content and its position, so
running the same file again refuses the tasks it queued before (their ids are known)
instead of queueing them twice.

Each task is checked (``POST /agents/check``) and queued only when every check passed;
a refused task is printed with why. Exit code: 0 when every task was queued (and, with
``--wait``, every agent completed), 1 when any was refused, failed or was killed (or
was still running when the wait ran out), 2 when the file cannot be read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import yaml

from mosaic.batch import Dispatched
from mosaic.client import MosaicClient
from shared.lifecycle import AGENT_FINAL
from shared.messages.agents import AgentRecord, AgentState
from shared.messages.checks import NOT_CHECKED, Check, PreCheck

BAR_WIDTH = 30


class BatchFileError(Exception):
    """The batch file cannot be read or is not a batch; the message says where."""


def load_batch(path: Path) -> list[dict[str, Any]]:
    """The tasks of the file at ``path``, defaults merged and task ids filled in."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BatchFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise BatchFileError(f"{path} is not valid {kind}: {exc}") from exc
    defaults: dict[str, Any] = {}
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"tasks", "defaults"})
        if unknown:
            raise BatchFileError(f"{path}: unknown top-level keys {unknown}; use tasks, defaults")
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise BatchFileError(f"{path}: defaults must be a mapping")
        data = data.get("tasks")
    if not isinstance(data, list) or not data:
        raise BatchFileError(
            f"{path}: expected a non-empty list of tasks, or a mapping with a tasks list"
        )
    tasks: list[dict[str, Any]] = []
    for number, task in enumerate(data, start=1):
        if not isinstance(task, dict):
            raise BatchFileError(f"{path}: task {number} is not a mapping")
        merged = merge(defaults, task)
        merged.setdefault("taskId", batch_task_id(raw, number))
        tasks.append(merged)
    return tasks


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def batch_task_id(content: bytes, number: int) -> str:
    """A task id stable for this file's content and the task's position."""
    digest = hashlib.sha256(content + f"\0{number}".encode()).hexdigest()
    return f"batch-{digest[:12]}"


class Progress:
    """A bar redrawn in place on a terminal; one line per step otherwise (logs, CI)."""

    def __init__(self, label: str, total: int, stream: IO[str]) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream
        self.tty = stream.isatty()

    def step(self, note: str, tally: str) -> None:
        self.done += 1
        if self.tty:
            filled = BAR_WIDTH * self.done // max(self.total, 1)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}  {tally}\x1b[K")
        else:
            self.stream.write(f"{self.label} {self.done}/{self.total}: {note}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.done:
            self.stream.write("\n")
            self.stream.flush()


def dispatch_all(
    client: MosaicClient, tasks: list[dict[str, Any]], out: IO[str]
) -> list[Dispatched]:
    """Pre-check and queue each task, drawing the progress on ``out``."""
    progress = Progress("dispatch", len(tasks), out)
    queued = refused = 0

    def each(done: Dispatched) -> None:
        nonlocal queued, refused
        queued, refused = queued + done.queued, refused + (not done.queued)
        if done.queued:
            verdict = f"queued as {done.agent_id}"
        elif done.precheck is not None:
            verdict = f"refused ({', '.join(c.name for c in causes(done.precheck))})"
        else:
            verdict = "refused"
        note = f"{done.task_id}: {verdict}"
        progress.step(note, f"queued {queued}  refused {refused}")

    try:
        return client.dispatch(tasks, precheck=True, on_each=each)
    finally:
        progress.finish()


def wait_for(
    client: MosaicClient, agent_ids: list[str], timeout: float | None, poll: float, out: IO[str]
) -> dict[str, AgentRecord]:
    """Each agent's record once it is final, or as it stands when ``timeout`` runs out."""
    progress = Progress("wait", len(agent_ids), out)
    deadline = None if timeout is None else time.monotonic() + timeout
    latest: dict[str, AgentRecord] = {}
    pending = list(agent_ids)
    try:
        while pending:
            for agent_id in list(pending):
                record = client.get_agent_status(agent_id)
                latest[agent_id] = record
                if record.state in AGENT_FINAL:
                    pending.remove(agent_id)
                    progress.step(f"{record.task_id}: {record.state.value}", _tally(latest))
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(poll)
    finally:
        progress.finish()
    return latest


def _tally(records: dict[str, AgentRecord]) -> str:
    counts: dict[str, int] = {}
    for record in records.values():
        if record.state in AGENT_FINAL:
            counts[record.state.value] = counts.get(record.state.value, 0) + 1
    return "  ".join(f"{state} {n}" for state, n in sorted(counts.items()))


def summary_lines(outcomes: list[Dispatched], ends: dict[str, AgentRecord] | None) -> list[str]:
    """What a person reads at the end: the counts, then each task that did not go well."""
    queued = [o for o in outcomes if o.queued]
    refused = [o for o in outcomes if not o.queued]
    lines = [f"queued {len(queued)}, refused {len(refused)}"]
    for outcome in refused:
        lines.append(f"  refused {outcome.task_id or '(no taskId)'}:")
        if outcome.precheck is not None:
            lines += [f"    {c.name}: {c.detail}" for c in causes(outcome.precheck)]
        else:
            lines.append(f"    {outcome.reason}")
    if ends is not None:
        states = [r.state for r in ends.values()]
        ended = (AgentState.COMPLETED, AgentState.FAILED, AgentState.KILLED)
        finished = {s: states.count(s) for s in ended}
        running = len(queued) - sum(finished.values())
        lines.append(
            ", ".join(f"{s.value} {n}" for s, n in finished.items()) + f", still running {running}"
        )
        for record in ends.values():
            if record.state != AgentState.COMPLETED:
                why = f": {record.error}" if record.error else ""
                who = f"{record.task_id} (agent {record.agent_id})"
                lines.append(f"  {record.state.value} {who}{why}")
    return lines


def causes(verdict: PreCheck) -> tuple[Check, ...]:
    """The failed checks a person must act on: those "not checked" because an earlier
    one failed are left out (``--json`` keeps every check)."""
    failed = verdict.failed()
    acted = tuple(c for c in failed if not c.detail.startswith(NOT_CHECKED))
    return acted or failed


def exit_code(outcomes: list[Dispatched], ends: dict[str, AgentRecord] | None) -> int:
    """0 when every task was queued (and, when waited for, completed); 1 otherwise."""
    if not all(o.queued for o in outcomes):
        return 1
    if ends is not None and any(r.state != AgentState.COMPLETED for r in ends.values()):
        return 1
    return 0


def as_json(outcomes: list[Dispatched], ends: dict[str, AgentRecord] | None) -> dict[str, Any]:
    """The ``--json`` document: counts, each task's outcome, and each agent's end."""
    doc: dict[str, Any] = {
        "queued": sum(o.queued for o in outcomes),
        "refused": sum(not o.queued for o in outcomes),
        "tasks": [o.model_dump(mode="json", by_alias=True) for o in outcomes],
    }
    if ends is not None:
        doc["ends"] = [
            {
                "agentId": r.agent_id,
                "taskId": r.task_id,
                "state": r.state.value,
                "error": r.error,
            }
            for r in ends.values()
        ]
    return doc


def run(args: argparse.Namespace, client: MosaicClient) -> int:
    """The command: load, dispatch, optionally wait, then the summary and the exit code."""
    try:
        tasks = load_batch(Path(args.file))
    except BatchFileError as exc:
        print(f"mosaic dispatch: {exc}", file=sys.stderr)
        return 2
    with client:
        outcomes = dispatch_all(client, tasks, sys.stderr)
        ends = None
        if args.wait:
            queued = [o.agent_id for o in outcomes if o.queued and o.agent_id]
            ends = wait_for(client, queued, args.wait_timeout, args.poll, sys.stderr)
    if args.json:
        print(json.dumps(as_json(outcomes, ends), indent=2))
    else:
        print("\n".join(summary_lines(outcomes, ends)))
    return exit_code(outcomes, ends)


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    func: Callable[[argparse.Namespace], int],
) -> None:
    """Register ``mosaic dispatch`` (its help is the command's documentation)."""
    command = sub.add_parser(
        "dispatch",
        parents=[common],
        help="pre-check a batch of tasks from a file and queue those that can run",
        description="Pre-check every task of FILE (POST /agents/check) and queue only those "
        "that pass; print each refused task with why. FILE is YAML (JSON if it ends in "
        ".json): a list of spawn requests, or {tasks: [...], defaults: {...}} (defaults "
        "merged into each task). Exit 0 when all were queued (and with --wait, completed), "
        "1 when any was refused or did not complete, 2 when FILE cannot be read.",
    )
    command.add_argument("file", help="the batch: YAML, or JSON when it ends in .json")
    command.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="wait for the queued agents to end and summarise how (default: --no-wait)",
    )
    command.add_argument(
        "--wait-timeout", type=float, help="with --wait: stop waiting after this many seconds"
    )
    command.add_argument(
        "--poll", type=float, default=1.0, help="with --wait: seconds between status polls"
    )
    command.set_defaults(func=func)
