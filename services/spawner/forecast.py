"""The conflict forecast, spawner side: when another agent's push lands, tell each of
this spawner's running agents of that repository whose changes it overlaps.

gitops announces every push on ``mosaic.repo.pushed`` with what the branch changed
(files, base line ranges). For each agent it runs on the same repository and base
branch (not the pusher), the spawner asks gitops for that agent's changes right now,
unless the agent has made no tool call since gitops last answered: that answer holds
(``Watched.changes``; a hundred agents on one repository asked again for every push,
four in ten of gitops' git processes). On overlap: a note for the agent's next tool
result (its ``NoteBox``), an ``overlap`` event on its status and an entry in its
record's ``overlaps``. At most once per push and agent. Advisory: a failure here is
logged and never touches the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from services.spawner.clients import GitOps
from services.spawner.overlap import find_overlaps, note_text
from services.spawner.runtime.notes import NoteBox
from shared.messages.agents import AgentOverlap, AgentPatch
from shared.messages.gitops import ChangesFound, ChangesRequested, RepoPushed
from shared.tracker import AgentTracker

log = logging.getLogger(__name__)


@dataclass
class Watched:
    """One running agent the forecast looks after."""

    agent_id: str
    task_id: str
    repository: str
    base_branch: str
    notes: NoteBox = field(default_factory=NoteBox)
    told: set[str] = field(default_factory=set)
    """Pushes (``agent@commit``) this agent was already checked against."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    known: ChangesFound | None = None
    """The agent's changes as gitops last found them, while the agent was idle..."""
    known_at: int = -1
    """...and its notes' ``generation`` then: they hold while it has not moved."""

    async def changes(self, gitops: GitOps) -> ChangesFound:
        """The agent's changes now: what gitops said last time if the agent has not
        acted since (no tool call begun or ended), else gitops' answer."""
        notes = self.notes
        if self.known is not None and notes.idle and self.known_at == notes.generation:
            return self.known
        generation, idle = notes.generation, notes.idle
        found = await gitops.changes(
            ChangesRequested(
                agent_id=self.agent_id,
                task_id=self.task_id,
                repository=self.repository,
                base_branch=self.base_branch,
            )
        )
        if found.error is None and idle and notes.generation == generation:
            self.known, self.known_at = found, generation
        return found


class Forecast:
    """This spawner's running agents, and what to do when a push is announced."""

    def __init__(self, tracker: AgentTracker, gitops: GitOps) -> None:
        self._tracker = tracker
        self._gitops = gitops
        self._agents: dict[str, Watched] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, agent_id: str, task_id: str, repository: str, base_branch: str) -> NoteBox:
        """Look after a running agent from now on; its note box, for its loop."""
        watched = Watched(agent_id, task_id, repository, base_branch)
        self._agents[agent_id] = watched
        return watched.notes

    def forget(self, agent_id: str) -> None:
        """The agent's run ended (safe to call again, or for an agent never watched)."""
        self._agents.pop(agent_id, None)

    @contextlib.contextmanager
    def watching(
        self, agent_id: str, task_id: str, repository: str, base_branch: str
    ) -> Iterator[NoteBox]:
        """``watch`` for the duration of the block, then ``forget``."""
        try:
            yield self.watch(agent_id, task_id, repository, base_branch)
        finally:
            self.forget(agent_id)

    async def on_message(self, data: bytes) -> None:
        """A ``mosaic.repo.pushed`` message: check the agents in the background."""
        try:
            pushed = RepoPushed.from_bytes(data)
        except ValidationError as exc:
            log.warning("ignoring a malformed push announcement: %s", exc.errors()[0]["msg"])
            return
        task = asyncio.create_task(self.on_push(pushed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_push(self, pushed: RepoPushed) -> None:
        """Check every agent here that the push may concern."""
        concerned = [
            w
            for w in list(self._agents.values())
            if w.repository == pushed.repository
            and w.base_branch == pushed.base_branch
            and w.agent_id != pushed.agent_id
        ]
        await asyncio.gather(*(self._check(w, pushed) for w in concerned))

    async def _check(self, watched: Watched, pushed: RepoPushed) -> None:
        extra = {"agent_id": watched.agent_id, "task_id": watched.task_id}
        key = f"{pushed.agent_id}@{pushed.commit}"
        async with watched.lock:
            if key in watched.told:
                return
            watched.told.add(key)
            try:
                await self._tell(watched, pushed)
            except Exception:
                log.warning("conflict forecast failed for this push of %s", pushed.branch,
                            exc_info=True, extra=extra)  # fmt: skip

    async def _tell(self, watched: Watched, pushed: RepoPushed) -> None:
        extra = {"agent_id": watched.agent_id, "task_id": watched.task_id}
        mine = await watched.changes(self._gitops)
        if mine.error is not None:
            log.info("no forecast against %s: %s", pushed.branch, mine.error.message, extra=extra)
            return
        overlaps = find_overlaps(
            pushed.files, mine.files, same_base=mine.base_commit == pushed.base_commit
        )
        if not overlaps:
            return
        watched.notes.post(note_text(pushed, overlaps))
        entry = AgentOverlap(
            agent_id=pushed.agent_id,
            branch=pushed.branch,
            commit=pushed.commit,
            files=tuple(o.describe() for o in overlaps),
        )
        store = self._tracker.store
        record = await store.get_agent(watched.agent_id)
        if record is not None:
            kept = tuple(o for o in record.overlaps if o.agent_id != pushed.agent_id)
            await store.update(watched.agent_id, AgentPatch(overlaps=(*kept, entry)))
        await self._tracker.record(
            watched.agent_id,
            watched.task_id,
            "overlap",
            entry.model_dump(mode="json", exclude={"at"}),
        )
        log.info("overlaps %s: %s", pushed.branch, ", ".join(entry.files), extra=extra)
