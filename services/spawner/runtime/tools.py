"""The tools an agent may call: their input models, per-agent-type sets, and dispatch.

Names and input fields here are the contract the model sees. Every tool runs through
the agent's ``Sandbox`` and is confined to the worktree; anything going wrong (bad
input, a path escaping, a missing string) becomes an ``is_error`` result for the model,
and the loop carries on.
"""

from __future__ import annotations

import functools
import logging
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.spawner.runtime import tool_handlers as handlers
from services.spawner.runtime.providers.base import ToolCall, ToolDefinition, ToolResult
from shared import secrets_rules, tracing
from shared.messages.tasks import AgentType
from shared.sandbox.base import Sandbox, SandboxError, SandboxGoneError

logger = logging.getLogger(__name__)

FINISH = "finish"
MAX_COMMAND_TIMEOUT_S = 600.0
DEFAULT_COMMAND_TIMEOUT_S = 120.0

Path_ = Annotated[
    str, Field(min_length=1, max_length=4096, description="Path relative to the repository root.")
]


class ToolInput(BaseModel):
    """Strict: unknown fields are a model mistake worth telling it about."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ListFilesInput(ToolInput):
    path: Path_ = "."


class ReadFileInput(ToolInput):
    path: Path_
    start_line: Annotated[int, Field(ge=1, description="First line to show (1-based).")] | None = (
        None
    )
    end_line: Annotated[int, Field(ge=1, description="Last line to show (inclusive).")] | None = (
        None
    )


class WriteFileInput(ToolInput):
    path: Path_
    content: str = Field(description="The whole new content of the file.")


class EditFileInput(ToolInput):
    path: Path_
    old: str = Field(min_length=1, description="Exact text to replace; must occur exactly once.")
    new: str = Field(description="Replacement text.")


class SearchInput(ToolInput):
    pattern: str = Field(min_length=1, max_length=1000, description="Extended regular expression.")
    path: Path_ = "."


class RunCommandInput(ToolInput):
    command: str = Field(
        min_length=1, max_length=20_000, description="A shell command run in the repository root."
    )
    timeout: (
        Annotated[
            float, Field(gt=0, le=MAX_COMMAND_TIMEOUT_S, description="Seconds (default 120).")
        ]
        | None
    ) = None


class FinishInput(ToolInput):
    summary: str = Field(
        min_length=1, max_length=20_000, description="What you did and why it is done."
    )


_TOOLS: dict[str, tuple[type[ToolInput], str]] = {
    "list_files": (
        ListFilesInput,
        "List a directory of the repository (one level; directories end with /).",
    ),
    "read_file": (
        ReadFileInput,
        "Read a text file with line numbers (the numbers are not part of the file). "
        "Use start_line/end_line for large files.",
    ),
    "write_file": (
        WriteFileInput,
        "Create or overwrite a file with the given content (parents created).",
    ),
    "edit_file": (
        EditFileInput,
        "Replace the exact text `old` with `new` in a file. `old` must occur exactly once; "
        "include surrounding lines to make it unique.",
    ),
    "search": (SearchInput, "Search file contents recursively (grep -E), showing path:line: text."),
    "run_command": (
        RunCommandInput,
        "Run a shell command in the repository root (no network; output truncated). "
        "Use it for tests, linters and builds.",
    ),
    FINISH: (FinishInput, "Declare the work done, with a summary. Checks may send it back to you."),
}

TOOL_SETS: dict[str, tuple[str, ...]] = {
    "worker": (
        "list_files",
        "read_file",
        "write_file",
        "edit_file",
        "search",
        "run_command",
        FINISH,
    ),
    "tester": (
        "list_files",
        "read_file",
        "write_file",
        "edit_file",
        "search",
        "run_command",
        FINISH,
    ),
    "reviewer": ("list_files", "read_file", "search", FINISH),
}
"""Which tools each agent type gets; the reviewer reads and judges, it never writes."""


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's schema without titles (noise to the model)."""
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if key == "properties" and isinstance(value, dict):
            cleaned[key] = {name: _clean_schema(prop) for name, prop in value.items()}
        elif isinstance(value, dict):
            cleaned[key] = _clean_schema(value)
        elif isinstance(value, list):
            cleaned[key] = [_clean_schema(v) if isinstance(v, dict) else v for v in value]
        else:
            cleaned[key] = value
    return cleaned


def definitions(agent_type: AgentType) -> list[ToolDefinition]:
    """The tools offered to an agent of ``agent_type``, in a stable order (cache-friendly)."""
    return list(_definitions(agent_type))


@functools.cache
def _definitions(agent_type: AgentType) -> tuple[ToolDefinition, ...]:
    """Made once per agent type: generating pydantic's JSON schemas was 5 % of the
    spawner's busy time in a dispatch of no-op agents, and the tools never change."""
    result = []
    for name in TOOL_SETS[agent_type]:
        model, description = _TOOLS[name]
        schema = _clean_schema(model.model_json_schema())
        schema["additionalProperties"] = False
        result.append(ToolDefinition(name=name, description=description, input_schema=schema))
    return tuple(result)


def validate(call: ToolCall, agent_type: AgentType) -> ToolInput | str:
    """The validated input of ``call``, or an error message for the model."""
    allowed = TOOL_SETS[agent_type]
    if call.name not in _TOOLS:
        return f"unknown tool {call.name!r}; available tools: {', '.join(allowed)}"
    if call.name not in allowed:
        return (
            f"tool {call.name!r} is not available to a {agent_type} agent; "
            f"available: {', '.join(allowed)}"
        )
    model, _ = _TOOLS[call.name]
    try:
        return model.model_validate(call.input if call.input is not None else {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}"
            for err in exc.errors()
        )
        return f"invalid input for {call.name}: {problems}"


def redact(text: str) -> str:
    """Mask secrets before text goes into events or logs: the scanner's rules, so what
    a push would block is also what an event never shows."""
    return secrets_rules.redact(text)


def summarize(name: str, data: ToolInput | None, limit: int = 80) -> str:
    """A short, secret-free description of a call for progress events."""
    if data is None:
        return ""
    if isinstance(data, RunCommandInput):
        text = data.command
    elif isinstance(data, SearchInput):
        text = f"{data.pattern} in {data.path}"
    elif isinstance(data, FinishInput):
        text = data.summary
    else:
        text = str(getattr(data, "path", ""))
    text = redact(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_name(data: ToolInput) -> str:
    for name, (model, _) in _TOOLS.items():
        if isinstance(data, model):
            return name
    return type(data).__name__


async def execute(
    sandbox: Sandbox, call_id: str, data: ToolInput, *, log_extra: dict[str, str]
) -> ToolResult:
    """Run one validated, non-finish tool call through the sandbox, as a span of the
    task's trace: the tool's name and, for a command, only its program (never its
    arguments, output or environment)."""
    name = _tool_name(data)
    command = tracing.command_word(data.command) if isinstance(data, RunCommandInput) else None
    with tracing.span(
        f"tool {name}", attributes={"mosaic.tool": name, "mosaic.command": command}
    ) as span:
        result = await _execute(sandbox, call_id, data, log_extra=log_extra)
        span.set_attribute("mosaic.tool.error", result.is_error)
        return result


async def _execute(
    sandbox: Sandbox, call_id: str, data: ToolInput, *, log_extra: dict[str, str]
) -> ToolResult:
    try:
        if isinstance(data, ListFilesInput):
            text, error = await handlers.list_files(sandbox, data.path)
        elif isinstance(data, ReadFileInput):
            text, error = await handlers.read_file(
                sandbox, data.path, data.start_line, data.end_line
            )
        elif isinstance(data, WriteFileInput):
            text, error = await handlers.write_file(sandbox, data.path, data.content)
        elif isinstance(data, EditFileInput):
            text, error = await handlers.edit_file(sandbox, data.path, data.old, data.new)
        elif isinstance(data, SearchInput):
            text, error = await handlers.search(sandbox, data.pattern, data.path)
        elif isinstance(data, RunCommandInput):
            timeout = data.timeout or DEFAULT_COMMAND_TIMEOUT_S
            text, error = await handlers.run_command(sandbox, data.command, timeout)
        else:
            text, error = f"tool input {type(data).__name__} cannot be executed", True
    except SandboxGoneError:
        raise  # the attempt is over: no result the model could act on
    except SandboxError as exc:
        text, error = exc.message, True
    except (OSError, UnicodeError, ValueError) as exc:
        logger.warning("tool failed: %s", exc, extra=log_extra)
        text, error = f"{type(exc).__name__}: {exc}", True
    return ToolResult(tool_use_id=call_id, content=text, is_error=error)
