"""Model providers behind the agent loop, chosen by ``MOSAIC_PROVIDER``."""

from __future__ import annotations

from services.spawner.runtime.errors import ProviderError
from services.spawner.runtime.providers.base import (
    ModelTurn,
    Provider,
    ToolCall,
    ToolDefinition,
    ToolResult,
    Usage,
)
from services.spawner.runtime.types import AgentSpec
from shared.settings import NO_MODEL, ModelSettings

__all__ = [
    "ModelTurn",
    "Provider",
    "ToolCall",
    "ToolDefinition",
    "ToolResult",
    "Usage",
    "make_provider",
]


def make_provider(settings: ModelSettings, spec: AgentSpec) -> Provider:
    """A fresh provider for one agent run: ``anthropic`` or ``scripted`` per settings.

    Raises ``ProviderError`` when no provider is set (no key, no ``MOSAIC_PROVIDER``:
    never a silent scripted run) or anthropic has no key, ``PlanError`` for a bad plan.
    """
    kind = settings.provider()
    if kind is None:
        raise ProviderError(NO_MODEL)
    if kind == "anthropic":
        from services.spawner.runtime.providers.anthropic import AnthropicProvider

        return AnthropicProvider(settings, spec)
    if kind == "scripted":
        from services.spawner.runtime.providers.scripted import ScriptedProvider, plan_for

        return ScriptedProvider(plan_for(spec))
    raise ValueError(f"unknown provider {kind!r}")
