"""The model loop's sinks for one attempt: its progress and its conversation, recorded.

The loop swallows errors of its sinks (a lost event must not end an agent), except
one: a write refused by the fence means another attempt owns the task now, so this
one is stopped at once, before it touches the worktree the owner uses.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.spawner.attempt import Attempt
from services.spawner.kills import Running
from shared.errors import StaleAttemptError
from shared.messages.agents import AgentPatch
from shared.messages.conversation import ConversationEntry


class Progress:
    """Records the loop's progress events and transcript for one attempt."""

    def __init__(self, attempt: Attempt, running: Running) -> None:
        self._attempt = attempt
        self._running = running
        self.fenced_off: StaleAttemptError | None = None
        """The fence refused a write: another attempt owns the task."""

    async def __call__(self, kind: str, detail: dict[str, Any]) -> None:
        """The loop's progress sink."""
        try:
            await self._write(kind, detail)
        except StaleAttemptError as exc:  # the loop swallows sink errors: stop it here
            self.fenced_off = exc
            self._running.task.cancel("fenced off: another attempt owns the task")
            # Take the cancellation here, before the loop runs the tool this progress
            # announced: a stale attempt must not touch the worktree the owner now uses.
            await asyncio.sleep(0)

    async def _write(self, kind: str, detail: dict[str, Any]) -> None:
        patch: AgentPatch | None = None
        if kind == "turn_started":
            patch = AgentPatch(turns=detail.get("turn", 0))
        elif kind == "tool_called":
            patch = AgentPatch(last_tool=detail.get("tool"))
        elif kind == "tokens_used":
            patch = AgentPatch(tokens_used=detail.get("total", 0))
        tracker = self._attempt.tracker
        if patch is not None:
            await tracker.update(patch)
        await tracker.record("progress", {"step": kind, **detail})

    async def transcript(self, entries: list[ConversationEntry]) -> None:
        """The loop's transcript sink: the conversation, stamped with the attempt."""
        attempt = self._attempt
        stamped = [e.model_copy(update={"attempt": attempt.number}) for e in entries]
        await attempt.tracker.store.append_conversation(
            attempt.agent_id, stamped, fence=attempt.number
        )
