"""The audit trail's entry: who did what that weakened or bypassed a control, and why."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from shared.messages.base import Message, utcnow


def _new_id() -> str:
    return uuid.uuid4().hex


class AuditEntry(Message):
    """One audited act, stored on the ``AUDIT`` stream under ``mosaic.audit.<kind>``.

    ``kind`` is one subject token (``gate_skipped``, ``kill_all`` …); ``actor`` names
    the service, user or federated peer that acted; ``id`` dedupes republishing.
    """

    id: str = Field(default_factory=_new_id)
    kind: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    actor: str
    reason: str = ""
    agent_id: str | None = None
    task_id: str | None = None
    at: datetime = Field(default_factory=utcnow)
    detail: dict[str, Any] = {}
