"""Spawner settings: how many agents at once, queue timing, bounds, timeouts."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SpawnerSettings(BaseSettings):
    """Read from the environment (``SPAWNER_CONCURRENCY`` …)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    spawner_concurrency: int = 10
    """Agents one spawner runs at once; it takes no more tasks than it has free slots."""
    task_ack_wait_s: float = 30.0
    """JetStream ack wait; running agents send in-progress acks well within it."""
    task_max_deliver: int = Field(default=200, ge=-1)
    """JetStream's cap on deliveries of one task message (-1: none). Retries are
    decided by the task's ``maxRetries`` (at most 10, so 11 attempts), never by this;
    it only has to leave room for them plus hand-backs and kill-all naks, which cost a
    delivery but no attempt. A task whose last delivery cannot go back ends ``failed``."""
    task_lease_s: float | None = Field(default=None, gt=0)
    """How long a spawner keeps running an agent without NATS confirming its in-progress
    acks; then it kills the agent's sandbox and writes nothing more, since JetStream may
    have redelivered the task. Default: ``task_ack_wait_s`` (never longer)."""
    task_idle_poll_s: float = 0.25
    """How often an idle spawner probes for redelivered or delay-naked tasks (new
    publishes wake it at once)."""
    retry_base_delay_s: float = 2.0
    retry_max_delay_s: float = 300.0
    gitops_timeout_s: float = 120.0
    spawner_admission: bool = True
    """Admission control (admission.py): take tasks only while the gitops and gates
    requests in flight stay under an adaptive limit, so a burst waits in JetStream
    rather than timing out inside gitops; off: a task per free slot."""
    spawner_admission_initial: int = Field(default=8, ge=1)
    """The limit a spawner starts with (it then adapts, up to ``spawner_concurrency``)."""
    spawner_admission_target_s: float = Field(default=5.0, gt=0)
    """A gitops answer slower than this cuts the limit; quicker ones raise it."""
    gates_timeout_s: float = 900.0
    gates_attempts: int = 4
    agent_max_turns: int = 50
    agent_default_timeout_s: float = 1800.0
    agent_max_tokens: int = 2_000_000
    spawner_heartbeat_s: float = Field(default=5.0, gt=0)
    """How often the spawner refreshes its capability record (``shared.spawners``)."""
    spawner_record_ttl_s: float = Field(default=15.0, gt=0)
    """How long a record counts without a refresh: a spawner silent this long is dead."""
    spawner_recheck_s: float = Field(default=30.0, gt=0)
    """How often a spawner without a working sandbox looks for one again."""
    merge_queue_lease_s: float = Field(default=30.0, gt=0)
    """A merge-queue entry lives this long without its spawner's heartbeat (renewed every
    third of it): a holder whose spawner died stops blocking the queue after it."""
    merge_queue_poll_s: float = Field(default=0.5, gt=0)
    """How often a queued agent looks at its position."""
    merge_queue_attempts: int = Field(default=5, ge=1)
    """Integrations of one finish when the base keeps moving under the landing push."""
    budget_hold_poll_s: float = Field(default=5.0, gt=0)
    """While the deployment's daily budget holds intake, how often a spawner looks
    whether it was lifted (an admin's resume, the next UTC day)."""

    def lease_s(self) -> float:
        """The lease in seconds: ``task_lease_s``, capped by the ack wait."""
        if self.task_lease_s is None:
            return self.task_ack_wait_s
        return min(self.task_lease_s, self.task_ack_wait_s)
