"""The format of a repository's ``.mosaic/gates.toml``, in one place.

The gates service reads it (at the base commit) to choose each gate's command; gitops
reads it too when a coordinator asks whether a task could run (``POST /agents/check``),
so a broken file is found before a task is queued rather than after an agent worked.
The command detection and the profiles stay in ``services/gates``.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import MosaicError

GATES_FILE: Final = ".mosaic/gates.toml"

GateName = Literal["typecheck", "lint", "tests", "coverage", "build", "ai-review"]
AI_REVIEW: Final = "ai-review"


class GatesFileError(MosaicError):
    """``.mosaic/gates.toml`` is invalid; the message names the key."""

    code = "bad_gates_config"


class GateSpec(BaseModel):
    """One gate's entry in gates.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(min_length=1, max_length=4000)
    timeout: float | None = Field(default=None, gt=0, le=7200)
    writable: bool = False
    tool: str | None = Field(default=None, max_length=200)
    threshold: float | None = Field(default=None, ge=0, le=100)
    pattern: str | None = Field(default=None, max_length=500)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if re.compile(value).groups < 1:
                    raise ValueError("pattern needs a group capturing the figure")
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class GatesFile(BaseModel):
    """The whole of gates.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float | None = Field(default=None, gt=0, le=7200)
    detect: bool = True
    gates: dict[GateName, GateSpec | Literal[False]] = {}

    @field_validator("gates", mode="before")
    @classmethod
    def _strings_are_commands(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if AI_REVIEW in value and value[AI_REVIEW] is not False:
                raise ValueError(f"{AI_REVIEW} takes no command: it can only be turned off (false)")
            return {
                name: {"command": spec} if isinstance(spec, str) and spec.strip() else spec
                for name, spec in value.items()
            }
        return value


def parse_gates_file(text: str) -> GatesFile:
    """Validate gates.toml text; ``GatesFileError`` names what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GatesFileError(f"{GATES_FILE} is not valid TOML: {exc}") from exc
    try:
        return GatesFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise GatesFileError(f"{GATES_FILE} is invalid: {problems}") from exc
