"""The ``scripted`` provider: a deterministic plan of tool calls instead of a model.

For offline demos, tests and load tests. The plan's calls go through the same loop and
tool code as a real model's. A plan is a list of steps, one per turn::

    [{"tool": "write_file", "input": {"path": "a.txt", "content": "hi"}},
     {"tool": "finish", "input": {"summary": "done"}},
     {"tool": "edit_file", "input": {...}},        # runs if that finish was rejected
     {"tool": "finish", "input": {"summary": "fixed"}},
     {"text": "I give up"}]                         # a plain end_turn reply

A step may also carry ``"usage": {"input": n, "output": m}`` (and ``"cacheWrite"``,
``"cacheRead"``; without it, tokens are estimated from text length) and
``"stop_reason"`` (e.g. ``"max_tokens"``). The plan comes from ``request.options.plan``,
else the JSON/YAML file named by ``MOSAIC_SCRIPT``, else a default that writes
``mosaic-notes/<taskId>.md`` listing the work items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.spawner.runtime.errors import PlanError
from services.spawner.runtime.providers.base import (
    ModelTurn,
    ToolCall,
    ToolDefinition,
    ToolResult,
    Usage,
)
from services.spawner.runtime.types import AgentSpec


class ScriptSettings(BaseSettings):
    """``MOSAIC_SCRIPT``: a plan file used when a task carries no plan of its own."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    mosaic_script: Path | None = None


class StepUsage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: int = Field(default=0, ge=0)
    output: int = Field(default=0, ge=0)
    cache_write: int = Field(default=0, ge=0, alias="cacheWrite")
    cache_read: int = Field(default=0, ge=0, alias="cacheRead")


class PlanStep(BaseModel):
    """One scripted turn: a tool call, or plain text ending the turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str | None = None
    input: Any = None
    text: str = ""
    usage: StepUsage | None = None
    stop_reason: str | None = None

    @model_validator(mode="after")
    def _tool_or_text(self) -> PlanStep:
        if self.tool is None and not self.text:
            raise ValueError("a plan step needs a 'tool' or a 'text'")
        return self


def default_plan(spec: AgentSpec) -> list[dict[str, Any]]:
    """A small real edit: a notes file listing the work items, then finish."""
    request = spec.request
    items = "\n".join(f"- {item}" for item in request.context.work_items)
    content = (
        f"# Task {request.task_id}\n\nAgent `{spec.agent_id}` ({request.agent_type}).\n\n{items}\n"
    )
    if request.agent_type == "reviewer":
        return [
            {"tool": "list_files", "input": {"path": "."}},
            {
                "tool": "finish",
                "input": {"summary": "confidence: 1.0\nscripted review: nothing to report"},
            },
        ]
    return [
        {
            "tool": "write_file",
            "input": {"path": f"mosaic-notes/{request.task_id}.md", "content": content},
        },
        {"tool": "finish", "input": {"summary": f"wrote mosaic-notes/{request.task_id}.md"}},
    ]


def load_plan_file(path: Path) -> list[dict[str, Any]]:
    """A plan from a JSON or YAML file: a list of steps, or ``{"steps": [...]}``."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise PlanError(f"cannot read plan file {path}: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("steps")
    if not isinstance(data, list):
        raise PlanError(f"plan file {path} must hold a list of steps")
    return data


def parse_plan(raw: Sequence[Any]) -> list[PlanStep]:
    """Validated steps, or ``PlanError`` naming the bad step."""
    steps = []
    for number, item in enumerate(raw, start=1):
        try:
            steps.append(PlanStep.model_validate(item))
        except ValidationError as exc:
            raise PlanError(f"plan step {number} is invalid: {exc.errors()[0]['msg']}") from exc
    return steps


def plan_for(spec: AgentSpec, settings: ScriptSettings | None = None) -> list[PlanStep]:
    """The plan in force for ``spec``: the request's, the script file's, or the default."""
    if spec.request.options.plan is not None:
        return parse_plan(spec.request.options.plan)
    script = (settings or ScriptSettings()).mosaic_script
    if script is not None:
        return parse_plan(load_plan_file(script))
    return parse_plan(default_plan(spec))


def _estimate(text: str) -> int:
    return max(1, len(text) // 4)


class ScriptedProvider:
    """Replays a plan, one step a turn; results are observed only to estimate tokens."""

    name = "scripted"

    def __init__(self, steps: Sequence[PlanStep]) -> None:
        self.steps = list(steps)
        self.position = 0
        self.received: list[Sequence[ToolResult]] = []
        self._preamble = ""

    async def start(self, system: str, tools: Sequence[ToolDefinition], task: str) -> None:
        """Remember the prompt size for the first turn's token estimate."""
        self._preamble = system + task + "".join(t.name + t.description for t in tools)

    async def next_turn(
        self, results: Sequence[ToolResult], notice: str | None = None
    ) -> ModelTurn:
        """The next step of the plan; past its end, a plain reply saying so."""
        self.received.append(list(results))
        consumed = self._preamble + "".join(r.content for r in results) + (notice or "")
        self._preamble = ""
        if self.position >= len(self.steps):
            text = "scripted plan exhausted"
            usage = Usage(input=_estimate(consumed), output=_estimate(text))
            return ModelTurn(stop_reason="end_turn", text=text, usage=usage)
        step = self.steps[self.position]
        self.position += 1
        calls = []
        if step.tool is not None:
            calls.append(
                ToolCall(id=f"toolu_scripted_{self.position:04d}", name=step.tool, input=step.input)
            )
        if step.usage is not None:
            usage = Usage(
                input=step.usage.input,
                output=step.usage.output,
                cache_write=step.usage.cache_write,
                cache_read=step.usage.cache_read,
            )
        else:
            produced = step.text + json.dumps(step.input, default=str) if step.tool else step.text
            usage = Usage(input=_estimate(consumed), output=_estimate(produced))
        stop = step.stop_reason or ("tool_use" if calls else "end_turn")
        return ModelTurn(stop_reason=stop, text=step.text, tool_calls=calls, usage=usage)

    async def aclose(self) -> None:
        """Nothing to release."""
