"""Every NATS subject and stream name, in one place.

Handlers never spell a subject literally; they import it from here. Kill subjects are
core NATS (never JetStream) so a kill bypasses every queue.
"""

from __future__ import annotations

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

# Gitops request/reply (queue group ``gitops``).
GITOPS_QUEUE = "gitops"
GITOPS_WORKTREE_CREATE = "mosaic.gitops.worktree.create"
GITOPS_WORKTREE_REMOVE = "mosaic.gitops.worktree.remove"
GITOPS_COMMIT = "mosaic.gitops.commit"
GITOPS_PUSH = "mosaic.gitops.push"
GITOPS_BASE_STATUS = "mosaic.gitops.base.status"
GITOPS_INTEGRATE = "mosaic.gitops.integrate"
GITOPS_LAND = "mosaic.gitops.land"
GITOPS_CHANGES = "mosaic.gitops.changes"
GITOPS_DIFF = "mosaic.gitops.diff"  # an agent's diff for people (the gateway asks)
GITOPS_CHECK = "mosaic.gitops.check"  # read-only pre-check of a repository (POST /agents/check)

# Environment pre-check (queue group ``spawner-env``): a docker spawner says whether a
# repository's environment image is cached or buildable on its host (POST /agents/check).
SPAWNER_ENV_QUEUE = "spawner-env"
SPAWNER_ENVIRONMENT_CHECK = "mosaic.spawner.environment.check"

# A push landed (core NATS, advisory): gitops publishes, spawners forecast conflicts.
REPO_PUSHED = "mosaic.repo.pushed"

# Gates request/reply (queue group ``gates``).
GATES_QUEUE = "gates"
GATES_CHECK = "mosaic.gates.check"

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
    """The request/reply subject a service answers health probes on."""
    return f"{HEALTH_PREFIX}.{service}"
