"""Notes for a running agent from outside its loop, delivered with its next tool result.

Whoever learns something the agent should know mid-run (the conflict forecast: another
agent pushed changes to the lines it is editing) posts it here; the loop attaches what
is waiting to the last tool result of the next turn it sends back. A turn without tool
results keeps the notes for a later one, so a note always arrives as part of a tool
result the model reads, never as a message of its own.

The other way, the box tells who posts notes whether the agent has acted since they
last looked: its files change only through its tool calls (and its finish, which may
commit them), and the loop marks each (``acting``, ``moved``). The conflict forecast
checks every running agent against every push; while an agent has done nothing since
its last check, its changes are what they were, and gitops is not asked again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from services.spawner.runtime.providers.base import ToolResult


class NoteBox:
    """Pending notes of one agent (one event loop; no locking needed)."""

    def __init__(self) -> None:
        self._pending: list[str] = []
        self.generation = 0
        """Moves when a tool call of the agent begins and when it ends."""
        self._acting = 0

    @contextmanager
    def acting(self) -> Iterator[None]:
        """Around one tool call of the agent: its files may change meanwhile."""
        self.generation += 1
        self._acting += 1
        try:
            yield
        finally:
            self._acting -= 1
            self.generation += 1

    def moved(self) -> None:
        """The agent's files may have changed just now (a finish begins or ends). A
        finish is not a tool call under way: its steps (gates, commit, push) take
        seconds, checks meanwhile may keep their answer, and only what a gate leaves in
        the worktree during them could go unseen until the finish ends."""
        self.generation += 1

    @property
    def idle(self) -> bool:
        """No tool call of the agent is under way."""
        return self._acting == 0

    def post(self, note: str) -> None:
        """Queue ``note`` for the agent's next tool result."""
        self._pending.append(note)

    @property
    def pending(self) -> tuple[str, ...]:
        """Notes not delivered yet."""
        return tuple(self._pending)

    def attach(self, results: Sequence[ToolResult]) -> list[ToolResult]:
        """``results`` with every waiting note appended to the last one (then forgotten);
        unchanged, notes kept, when there is no tool result to carry them."""
        if not results or not self._pending:
            return list(results)
        notes, self._pending = self._pending, []
        last = results[-1]
        content = "\n\n".join([last.content, *notes])
        return [*results[:-1], ToolResult(last.tool_use_id, content, last.is_error)]
