"""The gateway's HTTP answers: the gateway writes them, ``mosaic.client`` reads them.

One definition each, so the two sides cannot drift. Readers ignore fields they do not
know (``extra="ignore"``): a newer gateway may add one without breaking an older client.
Request bodies are ``shared.messages.tasks.SpawnAgentRequest`` and friends.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from shared.messages.agents import AgentRecord
from shared.messages.base import CamelModel


class HttpAnswer(CamelModel):
    """Base of every answer model: frozen, tolerant of fields added later."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class SpawnAccepted(HttpAnswer):
    """The agent that runs the task; ``duplicate`` when the task id was already known."""

    agent_id: str
    task_id: str
    state: str
    task_state: str
    duplicate: bool = False


class AgentList(HttpAnswer):
    """A page of agents, newest first."""

    agents: list[AgentRecord]
    total: int
    offset: int
    limit: int


class KillResult(HttpAnswer):
    """What a kill achieved by the time the gateway answered."""

    agent_id: str
    state: str
    killed: bool
    elapsed_ms: float


class HoldStatus(HttpAnswer):
    """Whether intake is held (no queued task starts while it is): by a kill-all
    (``kind: killall``) or by the deployment's spent daily budget (``kind: budget``)."""

    held: bool
    kind: Literal["killall", "budget"] | None = None
    reason: str | None = None
    requested_by: str | None = None
    at: str | None = None
