"""An agent's conversation as kept for people: the model's turns, its tool calls and what
came back, redacted and capped, shown on the agent's page in the dashboard.

The model's own context lives in the provider for one run; this is a separate, lossy
record for reading after the fact. Every entry is masked with the secret rules the push
scanner uses (``shared.secrets_rules``) and cut at ``ENTRY_MAX_CHARS`` before it is
stored, so what the page shows is never more than what an event could show.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from shared import secrets_rules
from shared.messages.base import Message, utcnow

ENTRY_MAX_CHARS = 8000
"""Characters kept of one entry's text: a tool result can be a whole file or build log."""
CONVERSATION_MAX_ENTRIES = 2000
"""Entries kept per agent; older ones are dropped first (``dropped`` counts them)."""

EntryKind = Literal["task", "model", "tool_call", "tool_result", "notice"]
"""``task`` the task message, ``model`` the model's text, ``tool_call`` a call (its input
as JSON), ``tool_result`` what went back, ``notice`` what the loop told the model."""

_CUT = "\n[… cut: {} more characters]"


class ConversationEntry(Message):
    """One step of the conversation, already redacted and capped."""

    kind: EntryKind
    text: str
    turn: int = 0
    tool: str | None = None
    tool_call_id: str | None = None
    is_error: bool = False
    truncated: bool = False
    attempt: int | None = None
    at: datetime = Field(default_factory=utcnow)


class ConversationPage(Message):
    """A page of an agent's conversation, as ``GET /agents/{agentId}/conversation`` answers.

    ``total`` counts the entries kept; ``dropped`` the older ones no longer kept (the
    list is capped at ``CONVERSATION_MAX_ENTRIES``).
    """

    agent_id: str
    entries: tuple[ConversationEntry, ...]
    offset: int
    limit: int
    total: int
    dropped: int = 0


def conversation_entry(
    kind: EntryKind,
    content: Any,
    *,
    turn: int = 0,
    tool: str | None = None,
    tool_call_id: str | None = None,
    is_error: bool = False,
) -> ConversationEntry:
    """An entry for ``content`` (text, or anything JSON can show), masked and capped.

    Masking runs before the cut so a secret is never half shown at the cut's edge.
    """
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    masked = secrets_rules.redact(text)
    truncated = len(masked) > ENTRY_MAX_CHARS
    if truncated:
        masked = masked[:ENTRY_MAX_CHARS] + _CUT.format(len(masked) - ENTRY_MAX_CHARS)
    return ConversationEntry(
        kind=kind,
        text=masked,
        turn=turn,
        tool=tool,
        tool_call_id=tool_call_id,
        is_error=is_error,
        truncated=truncated,
    )
