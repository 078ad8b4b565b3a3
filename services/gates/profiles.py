"""Gate profiles: which gates a task's change must pass."""

from __future__ import annotations

from typing import Final

from shared.gatesfile import GateName
from shared.messages.gates import GateProfile

ProfileName = GateProfile

MECHANICAL: Final[tuple[GateName, ...]] = ("typecheck", "lint", "tests", "coverage", "build")

PROFILES: Final[dict[str, tuple[GateName, ...]]] = {
    "strict": ("typecheck", "lint", "tests", "coverage", "build", "ai-review"),
    "standard": ("tests", "lint"),
    "minimal": ("tests",),
}


def gates_of(profile: str) -> tuple[GateName, ...]:
    """The gates of ``profile`` in the order they are reported."""
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown gate profile {profile!r}") from None
