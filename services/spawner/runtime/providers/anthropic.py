"""The ``anthropic`` provider: the Messages API with tool use, through the official SDK.

The SDK retries 429, 529 and 5xx itself (honouring ``retry-after``); we cap how often
(``max_retries``) and how long one request may take, and turn whatever still fails into
a ``ProviderError`` with a reason a person can act on. The stable system prompt and the
tool definitions carry ``cache_control`` so repeated turns and agents reuse the prompt
cache; the newest user message carries one too, so each turn reads the conversation so
far from the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anthropic
from anthropic import AsyncAnthropic

from services.spawner.runtime.errors import ProviderError
from services.spawner.runtime.providers.base import (
    ModelTurn,
    ToolCall,
    ToolDefinition,
    ToolResult,
    Usage,
)
from services.spawner.runtime.types import AgentSpec
from shared import tracing
from shared.settings import ModelSettings

logger = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES = 4
DEFAULT_REQUEST_TIMEOUT_S = 600.0
_EPHEMERAL = {"type": "ephemeral"}


def _block_param(block: Any) -> dict[str, Any] | None:
    """A response content block as it must be sent back in the assistant turn."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "text": block.text} if block.text else None
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    dumped: dict[str, Any] = block.model_dump(mode="json", exclude_none=True)
    return dumped


class AnthropicProvider:
    """One agent's conversation with Claude."""

    name = "anthropic"

    def __init__(
        self,
        settings: ModelSettings,
        spec: AgentSpec,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        if settings.anthropic_api_key is None:
            raise ProviderError(
                "the anthropic provider needs ANTHROPIC_API_KEY (or CLAUDE_API_KEY)"
            )
        self._secret = settings.anthropic_api_key.get_secret_value()
        self._client = AsyncAnthropic(
            api_key=self._secret,
            base_url=settings.anthropic_base_url,
            max_retries=max_retries,
            timeout=request_timeout,
            **tracing.model_sdk_options(AsyncAnthropic),
        )
        self.model = settings.anthropic_model
        self.max_tokens = settings.anthropic_max_tokens
        self.max_retries = max_retries
        self._log = {"agent_id": spec.agent_id, "task_id": spec.task_id}
        self._system: list[dict[str, Any]] = []
        self._tools: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []

    async def start(self, system: str, tools: Sequence[ToolDefinition], task: str) -> None:
        """Set the cached prefix (tools, system) and the first user message."""
        self._system = [{"type": "text", "text": system, "cache_control": _EPHEMERAL}]
        self._tools = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in tools
        ]
        if self._tools:
            self._tools[-1]["cache_control"] = _EPHEMERAL
        self.messages = [{"role": "user", "content": [{"type": "text", "text": task}]}]

    def _add_user_turn(self, results: Sequence[ToolResult], notice: str | None) -> None:
        content: list[dict[str, Any]] = [
            {
                "type": "tool_result",
                "tool_use_id": r.tool_use_id,
                "content": r.content or "(empty)",
                **({"is_error": True} if r.is_error else {}),
            }
            for r in results
        ]
        if notice:
            content.append({"type": "text", "text": notice})
        if content:
            self.messages.append({"role": "user", "content": content})

    def _request_messages(self) -> list[dict[str, Any]]:
        """The conversation with a cache breakpoint on the last block of the newest turn."""
        messages = list(self.messages)
        last = messages[-1]
        blocks = list(last["content"])
        blocks[-1] = {**blocks[-1], "cache_control": _EPHEMERAL}
        messages[-1] = {**last, "content": blocks}
        return messages

    def redact(self, text: str) -> str:
        """``text`` with the API key masked (in case anything echoes it)."""
        return text.replace(self._secret, "***") if self._secret else text

    def _translate(self, exc: anthropic.APIError) -> ProviderError:
        if isinstance(exc, anthropic.APIStatusError):
            body = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            kind = (
                error.get("type", type(exc).__name__)
                if isinstance(error, dict)
                else type(exc).__name__
            )
            detail = error.get("message", "") if isinstance(error, dict) else ""
            status = exc.status_code
            if status == 401:
                why = "the model API rejected the credentials (check ANTHROPIC_API_KEY)"
            elif status == 403:
                why = "the model API refused access"
            elif status in (429, 529) or status >= 500:
                why = f"the model API kept failing after {self.max_retries} retries"
            else:
                why = "the model API refused the request"
            message = f"{why}: {status} {kind}" + (f": {detail}" if detail else "")
            retryable = status in (408, 409, 429, 529) or status >= 500
            return ProviderError(self.redact(message), status=status, retryable=retryable)
        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderError("the model API timed out after retries", retryable=True)
        if isinstance(exc, anthropic.APIConnectionError):
            return ProviderError(
                f"cannot reach the model API after {self.max_retries} retries: "
                + self.redact(str(exc)),
                retryable=True,
            )
        return ProviderError(f"model API error: {self.redact(str(exc))}")

    async def next_turn(
        self, results: Sequence[ToolResult], notice: str | None = None
    ) -> ModelTurn:
        """Send the tool results (and notice), return Claude's reply as a ``ModelTurn``."""
        self._add_user_turn(results, notice)
        with tracing.model_call("anthropic", self.model) as span:
            try:
                response = await self._client.messages.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    system=self._system,  # type: ignore[arg-type]
                    tools=self._tools,  # type: ignore[arg-type]
                    messages=self._request_messages(),  # type: ignore[arg-type]
                )
            except anthropic.APIError as exc:
                error = self._translate(exc)
                logger.warning("model call failed: %s", error.message, extra=self._log)
                raise error from None
            tracing.record_usage(
                span,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                cache_read=response.usage.cache_read_input_tokens or 0,
                cache_write=response.usage.cache_creation_input_tokens or 0,
                stop_reason=response.stop_reason,
            )
        blocks = [b for b in (_block_param(block) for block in response.content) if b is not None]
        self.messages.append(
            {"role": "assistant", "content": blocks or [{"type": "text", "text": "…"}]}
        )
        calls = [
            ToolCall(id=block.id, name=block.name, input=block.input)
            for block in response.content
            if block.type == "tool_use"
        ]
        text = "\n".join(block.text for block in response.content if block.type == "text")
        usage = response.usage
        cache_read = usage.cache_read_input_tokens or 0
        cache_write = usage.cache_creation_input_tokens or 0
        return ModelTurn(
            stop_reason=response.stop_reason or "end_turn",
            text=text,
            tool_calls=calls,
            usage=Usage(
                input=usage.input_tokens,
                output=usage.output_tokens,
                cache_read=cache_read,
                cache_write=cache_write,
            ),
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
