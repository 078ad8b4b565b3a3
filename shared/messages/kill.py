"""Killswitch contracts. Parsing is lenient on purpose: a kill must never depend on a
well-formed body, so anything unreadable becomes a kill with the reason missing."""

from __future__ import annotations

import json

from pydantic import ValidationError

from shared.messages.base import Message


class KillOrdered(Message):
    """Body of ``mosaic.kill.agent.<id>`` and ``mosaic.kill.all`` (both fields optional)."""

    reason: str | None = None
    requested_by: str | None = None

    @classmethod
    def lenient(cls, data: bytes) -> KillOrdered:
        """Parse whatever arrived; an empty or malformed body still yields an order."""
        try:
            raw = json.loads(data) if data.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return cls(reason=None, requested_by=None)
        if not isinstance(raw, dict):
            return cls()
        try:
            return cls.model_validate(
                {k: v for k, v in raw.items() if k in ("reason", "requestedBy", "requested_by")}
            )
        except ValidationError:
            return cls()


class KillReport(Message):
    """What a kill did: the agents stopped by the one who answers."""

    killed: tuple[str, ...] = ()
    responder: str = ""
