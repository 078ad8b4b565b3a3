"""Every NATS subject and stream name, in one place.

Handlers never spell a subject literally; they import it from here. Kill subjects are
core NATS (never JetStream) so a kill bypasses every queue.
"""

from __future__ import annotations

import re
from enum import StrEnum

# Durable work: JetStream stream with one subject per priority (JetStream has no
# message priority, so the spawner drains the bands from highest to lowest).
TASKS_STREAM = "TASKS"
TASKS_PREFIX = "mosaic.tasks"
TASKS_ALL = f"{TASKS_PREFIX}.>"
TASKS_CONSUMER_PREFIX = "spawner-p"

# Agent lifecycle and progress events (core NATS; history is kept in Valkey).
EVENTS_PREFIX = "mosaic.events"
EVENTS_ALL = f"{EVENTS_PREFIX}.>"

# Killswitch (core NATS only).
KILL_ALL = "mosaic.kill.all"
KILL_AGENT_PREFIX = "mosaic.kill.agent"
KILL_AGENT_ANY = f"{KILL_AGENT_PREFIX}.*"
KILL_RESUME = "mosaic.kill.resume"

# Gitops request/reply. Every question about an agent's repository goes to the gitops of
# the host that runs the agent (its workspace is there): ``gitops(host, GitOp.X)``, in
# that host's queue group ``gitops_queue(host)``. Read-only questions any host can answer
# about a remote (the pre-check, whether a local repository path exists) stay unscoped.
GITOPS_PREFIX = "mosaic.gitops"
GITOPS_CHECK = "mosaic.gitops.check"  # read-only pre-check of a repository (POST /agents/check)
GITOPS_REPOSITORY_EXISTS = "mosaic.gitops.repository.exists"  # a local path, at submit
GITOPS_ANY_QUEUE = "gitops"  # the queue group of the unscoped questions (every host's gitops)


class GitOp(StrEnum):
    """The host-scoped gitops operations (the last tokens of their subjects)."""

    WORKTREE_CREATE = "worktree.create"
    WORKTREE_REMOVE = "worktree.remove"
    COMMIT = "commit"
    PUSH = "push"
    BASE_STATUS = "base.status"
    INTEGRATE = "integrate"
    LAND = "land"
    CHANGES = "changes"
    DIFF = "diff"  # an agent's diff for people (the gateway asks the agent's host)


def gitops(host: str, operation: GitOp) -> str:
    """``mosaic.gitops.<host>.<operation>``: a request to one host's gitops."""
    return f"{GITOPS_PREFIX}.{_host(host)}.{operation.value}"


def gitops_any_host(operation: GitOp) -> str:
    """``mosaic.gitops.*.<operation>``: the operation on every host (NATS permissions)."""
    return f"{GITOPS_PREFIX}.*.{operation.value}"


def gitops_queue(host: str) -> str:
    """The queue group of one host's gitops instances (they share its workspace)."""
    return f"gitops-{_host(host)}"


# Environment pre-check: a docker spawner says whether a repository's environment image
# is cached or buildable on its host (POST /agents/check), asked of the host whose gitops
# read the repository (its path is on that host): ``spawner_environment_check(host)``.
SPAWNER_ENVIRONMENT_CHECK_ANY_HOST = "mosaic.spawner.*.environment.check"


def spawner_environment_check(host: str) -> str:
    """``mosaic.spawner.<host>.environment.check`` (queue group ``spawner_env_queue``)."""
    return f"mosaic.spawner.{_host(host)}.environment.check"


def spawner_env_queue(host: str) -> str:
    """The queue group of one host's docker spawners for environment checks."""
    return f"spawner-env-{_host(host)}"


# A push landed (core NATS, advisory): gitops publishes, spawners forecast conflicts.
REPO_PUSHED = "mosaic.repo.pushed"

# Gates request/reply: a check runs in the worktree, so on the agent's host.
GATES_PREFIX = "mosaic.gates"
GATES_CHECK_ANY_HOST = f"{GATES_PREFIX}.*.check"  # every host's (NATS permissions)


def gates_check(host: str) -> str:
    """``mosaic.gates.<host>.check``: a gate check on one host's gates service."""
    return f"{GATES_PREFIX}.{_host(host)}.check"


def gates_queue(host: str) -> str:
    """The queue group of one host's gates instances."""
    return f"gates-{_host(host)}"


def killswitch_queue(host: str) -> str:
    """The queue group of one host's killswitch instances: every host's killswitch gets
    each kill order (it ends only its own host's agents), one instance per host."""
    return f"killswitch-{_host(host)}"


# Finished spans of tasks (core NATS, fire-and-forget): every service publishes them
# (``shared.spanbus``), the gateway keeps them per trace for ``GET /agents/{id}/trace``;
# one gateway of the queue group stores each batch.
TRACE_SPANS = "mosaic.traces.spans"
TRACE_COLLECTORS = "gateway-traces"

# Liveness probes: every service answers ``mosaic.health.<service>``.
HEALTH_PREFIX = "mosaic.health"


def task_subject(priority: int) -> str:
    """The JetStream subject of a priority band (1 is the highest, as in BullMQ)."""
    if not 1 <= priority <= 10:
        raise ValueError(f"priority must be 1..10, got {priority}")
    return f"{TASKS_PREFIX}.p{priority:02d}"


def agent_events(agent_id: str) -> str:
    """The subject an agent's events are published on."""
    return f"{EVENTS_PREFIX}.agent.{agent_id}"


def kill_agent(agent_id: str) -> str:
    """The core NATS subject that kills one agent."""
    return f"{KILL_AGENT_PREFIX}.{agent_id}"


def health(service: str) -> str:
    """The request/reply subject a service answers health probes on (any host's)."""
    return f"{HEALTH_PREFIX}.{service}"


def health_on(service: str, host: str) -> str:
    """``mosaic.health.<service>.<host>``: the probe of one host's instance of a service
    (``mosaic up --join`` waits for its own host's, not another's)."""
    return f"{HEALTH_PREFIX}.{service}.{_host(host)}"


def span_name(subject: str) -> str:
    """A request subject as a span name, without ``mosaic.`` and without the host token
    (``mosaic.gitops.<host>.push`` is ``gitops.push``): span names name the operation,
    one per kind; the host is the span's ``mosaic.host`` attribute."""
    return _without_host(subject)[0]


def subject_host(subject: str) -> str | None:
    """The host token of a host-scoped request subject, else None."""
    return _without_host(subject)[1]


def _without_host(subject: str) -> tuple[str, str | None]:
    parts = subject.removeprefix("mosaic.").split(".")
    if len(parts) >= 3 and _HOST.match(parts[1]):
        rest = ".".join(parts[2:])
        scoped = (
            (parts[0] == "gitops" and rest in set(GitOp))
            or (parts[0] == "gates" and rest == "check")
            or (parts[0] == "spawner" and rest == "environment.check")
        )
        if scoped:
            return f"{parts[0]}.{rest}", parts[1]
    return ".".join(parts), None


_HOST = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _host(host: str) -> str:
    """``host`` when it is one safe subject token (``shared.settings.HOST_ID_PATTERN``)."""
    if not _HOST.match(host):
        raise ValueError(f"not a host id (one subject token, [a-z0-9_-]): {host!r}")
    return host
