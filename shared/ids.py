"""What an agent or task id may be: one rule, checked at the HTTP edge and again by gitops.

An id becomes part of a branch name (``mosaic/agent-<agentId>``) and of a directory name
(``agent-<agentId>-<taskId>``), so it must be a safe path segment and a valid ref part.
Checking the same rule at the edge means a spawn the gateway accepts is one gitops can
serve: a task id that only gitops refused used to be accepted (202) and then fail.
"""

from __future__ import annotations

import re

ID_MAX_LENGTH = 100
ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{ID_MAX_LENGTH - 1}}}$"
"""The character rule alone (for schemas); ``check_id`` adds the '..' and suffix rules."""
_ID = re.compile(ID_PATTERN)


AGENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""What the HTTP API accepts where it looks an agent up (the gateway makes 16 hex digits;
a narrower rule than ``ID_PATTERN``, so a looked-up id is always a usable id)."""


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a usable id, or None when it is."""
    if not _ID.match(value):
        return (
            f"must be 1-{ID_MAX_LENGTH} letters, digits, '.', '_' or '-' and start with a "
            "letter or digit"
        )
    if ".." in value or value.endswith((".lock", ".")):
        return "must not contain '..' or end with '.' or '.lock'"
    return None


def check_id(value: str) -> str:
    """``value`` if it is a usable id, else ValueError (a pydantic validator)."""
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value
