"""Notes for a running agent from outside its loop, delivered with its next tool result.

Whoever learns something the agent should know mid-run (the conflict forecast: another
agent pushed changes to the lines it is editing) posts it here; the loop attaches what
is waiting to the last tool result of the next turn it sends back. A turn without tool
results keeps the notes for a later one, so a note always arrives as part of a tool
result the model reads, never as a message of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.spawner.runtime.providers.base import ToolResult


class NoteBox:
    """Pending notes of one agent (one event loop; no locking needed)."""

    def __init__(self) -> None:
        self._pending: list[str] = []

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
