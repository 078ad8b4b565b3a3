"""The agent loop: ask the model for a turn, run its tool calls in the sandbox, repeat.

Provider-agnostic: a real model and a scripted plan go through the same code. The loop
ends when the model calls ``finish`` (and the finish check accepts) or ends its turn
without tool calls; it fails when a bound (turns, wall time, tokens, finish attempts) is
exceeded or the provider gives up. Cancellation (the killswitch) is never swallowed: it
propagates, and the sandbox kills whatever command was running.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from services.spawner.runtime import tools
from services.spawner.runtime.errors import ProviderError
from services.spawner.runtime.notes import NoteBox
from services.spawner.runtime.prompts import system_prompt, task_message
from services.spawner.runtime.providers.base import ModelTurn, Provider, ToolResult
from services.spawner.runtime.types import (
    AgentOutcome,
    AgentSpec,
    Bounds,
    FinishCheck,
    Meter,
    ProgressSink,
    TranscriptSink,
)
from shared.messages.conversation import ConversationEntry, EntryKind, conversation_entry
from shared.sandbox.base import Sandbox

logger = logging.getLogger(__name__)

CUT_OFF_TOOL = (
    "Not executed: your reply hit the max_tokens limit before this tool call was complete. "
    "Call it again with a smaller input "
    "(split large files into several write_file/edit_file calls)."
)
CUT_OFF_TEXT = (
    "Your reply was cut off by the max_tokens limit. Continue, keeping each reply shorter."
)


@dataclass
class _Run:
    spec: AgentSpec
    sandbox: Sandbox
    provider: Provider
    bounds: Bounds
    progress: ProgressSink
    finish_check: FinishCheck | None
    meter: Meter | None = None
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    rejections: int = 0
    log: dict[str, str] = field(default_factory=dict)
    notes: NoteBox = field(default_factory=NoteBox)
    transcript: TranscriptSink | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def outcome(
        self, status: str, *, summary: str = "", reason: str | None = None, retryable: bool = False
    ) -> AgentOutcome:
        if status == "failed":
            logger.warning("agent failed: %s", reason, extra=self.log)
        else:
            logger.info("agent finished after %d turns", self.turns, extra=self.log)
        return AgentOutcome(
            status="finished" if status == "finished" else "failed",
            summary=summary,
            reason=reason,
            turns=self.turns,
            tokens_used=self.tokens,
            retryable=retryable,
            extra={
                "provider": self.provider.name,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "finish_rejections": self.rejections,
            },
        )

    async def emit(self, kind: str, detail: dict[str, Any]) -> None:
        """Progress is best effort: a sink that fails must not fail the agent."""
        try:
            await self.progress(kind, detail)
        except Exception:
            logger.warning("progress sink failed for %s", kind, exc_info=True, extra=self.log)

    async def say(self, kind: EntryKind, content: object, **about: Any) -> None:
        """Add to the conversation kept for people; best effort like progress."""
        await self.say_all([conversation_entry(kind, content, turn=self.turns, **about)])

    async def say_all(self, entries: list[ConversationEntry]) -> None:
        if self.transcript is None or not entries:
            return
        try:
            await self.transcript(entries)
        except Exception:
            logger.warning("conversation sink failed", exc_info=True, extra=self.log)

    async def check_finish(self, summary: str) -> str | None:
        if self.finish_check is None:
            return None
        self.notes.moved()  # the finish may commit the agent's files
        try:
            verdict = await self.finish_check(summary)
        finally:
            self.notes.moved()
        if verdict is not None:  # what the agent is told, for operators (masked, trimmed)
            await self.emit("finish_sent_back", {"reason": tools.redact(verdict)[:2000]})
        return verdict

    def rejected_too_often(self) -> bool:
        self.rejections += 1
        return self.rejections > self.bounds.max_finish_attempts

    async def run(self) -> AgentOutcome:
        agent_type = self.spec.request.agent_type
        task = task_message(self.spec)
        await self.provider.start(
            self.spec.system_prompt or system_prompt(agent_type),
            tools.definitions(agent_type),
            task,
        )
        await self.say("task", task)
        results: list[ToolResult] = []
        notice: str | None = None
        while True:
            if self.turns >= self.bounds.max_turns:
                return self.outcome(
                    "failed", reason=f"max turns ({self.bounds.max_turns}) exceeded"
                )
            self.turns += 1
            await self.emit("turn_started", {"turn": self.turns})
            if notice is not None:
                await self.say("notice", notice)
            try:
                reply = await self.provider.next_turn(self.notes.attach(results), notice)
            except ProviderError as exc:
                return self.outcome(
                    "failed",
                    reason=f"model provider failed: {exc.message}",
                    retryable=exc.retryable,
                )
            results, notice = [], None
            await self.say_all(self._turn_entries(reply))
            self.input_tokens += reply.usage.all_input
            self.output_tokens += reply.usage.output
            await self.emit(
                "tokens_used",
                {"input": self.input_tokens, "output": self.output_tokens, "total": self.tokens},
            )
            if self.meter is not None:  # may raise to stop the run (a budget reached)
                await self.meter(reply.usage)
            if self.tokens > self.bounds.max_tokens:
                return self.outcome(
                    "failed", reason=f"token budget {self.bounds.max_tokens} exceeded"
                )

            if reply.stop_reason == "max_tokens":
                results = [ToolResult(c.id, CUT_OFF_TOOL, is_error=True) for c in reply.tool_calls]
                notice = None if results else CUT_OFF_TEXT
                continue
            if reply.stop_reason == "refusal":
                return self.outcome("failed", reason="the model refused to continue")
            if reply.stop_reason == "pause_turn" and not reply.tool_calls:
                continue
            if not reply.tool_calls:
                summary = reply.text.strip() or "(the agent ended its turn without a summary)"
                verdict = await self.check_finish(summary)
                if verdict is None:
                    return self.outcome("finished", summary=summary)
                if self.rejected_too_often():
                    return self._too_many_rejections(verdict)
                notice = f"Your work was sent back:\n{verdict}\nFix this, then call finish."
                continue
            done = await self._run_calls(reply, results)
            if done is not None:
                return done

    def _turn_entries(self, reply: ModelTurn) -> list[ConversationEntry]:
        entries = []
        if reply.text.strip():
            entries.append(conversation_entry("model", reply.text, turn=self.turns))
        for call in reply.tool_calls:
            entries.append(
                conversation_entry(
                    "tool_call", call.input, turn=self.turns, tool=call.name, tool_call_id=call.id
                )
            )
        return entries

    async def _result(self, results: list[ToolResult], result: ToolResult, tool: str) -> None:
        """Hand ``result`` to the model with the next turn, and keep it for people."""
        results.append(result)
        await self.say(
            "tool_result",
            result.content,
            tool=tool,
            tool_call_id=result.tool_use_id,
            is_error=result.is_error,
        )

    def _too_many_rejections(self, verdict: str) -> AgentOutcome:
        return self.outcome(
            "failed",
            reason=f"finish attempts ({self.bounds.max_finish_attempts}) exceeded: {verdict[:500]}",
        )

    async def _run_calls(self, reply: ModelTurn, results: list[ToolResult]) -> AgentOutcome | None:
        """Run the turn's calls in order, appending results; an outcome if it ended the run."""
        agent_type = self.spec.request.agent_type
        for call in reply.tool_calls:
            data = tools.validate(call, agent_type)
            summary = tools.summarize(call.name, None if isinstance(data, str) else data)
            await self.emit("tool_called", {"tool": call.name, "summary": summary})
            if isinstance(data, str):
                logger.info("refused tool call %s: %s", call.name, data, extra=self.log)
                await self._result(results, ToolResult(call.id, data, is_error=True), call.name)
            elif isinstance(data, tools.FinishInput):
                verdict = await self.check_finish(data.summary)
                if verdict is None:
                    return self.outcome("finished", summary=data.summary)
                if self.rejected_too_often():
                    return self._too_many_rejections(verdict)
                logger.info("finish sent back (%d)", self.rejections, extra=self.log)
                sent_back = ToolResult(call.id, f"finish was sent back:\n{verdict}", is_error=True)
                await self._result(results, sent_back, call.name)
            else:
                with self.notes.acting():
                    done = await tools.execute(self.sandbox, call.id, data, log_extra=self.log)
                await self._result(results, done, call.name)
        return None


async def run_agent(
    spec: AgentSpec,
    sandbox: Sandbox,
    provider: Provider,
    bounds: Bounds,
    progress: ProgressSink,
    finish_check: FinishCheck | None = None,
    notes: NoteBox | None = None,
    transcript: TranscriptSink | None = None,
    meter: Meter | None = None,
) -> AgentOutcome:
    """Run one agent to its end and close ``provider``; bounds end it ``failed`` naming them.

    Cancelling the task running this cancels the model call or the command in flight
    (the sandbox kills its process group) and re-raises ``CancelledError``. Notes posted
    to ``notes`` while it runs reach the model with its next tool result. ``transcript``
    receives the conversation (redacted, capped) for people to read afterwards. ``meter``
    is told each call's usage before its tool calls run; what it raises ends the run.
    """
    run = _Run(
        spec,
        sandbox,
        provider,
        bounds,
        progress,
        finish_check,
        meter,
        log={"agent_id": spec.agent_id, "task_id": spec.task_id},
        notes=notes if notes is not None else NoteBox(),
        transcript=transcript,
    )
    logger.info("agent starting with provider %s", provider.name, extra=run.log)
    scope = asyncio.timeout(bounds.timeout_s)
    try:
        async with scope:
            return await run.run()
    except TimeoutError:
        if not scope.expired():
            raise
        return run.outcome("failed", reason=f"timeout after {bounds.timeout_s:g}s")
    finally:
        await provider.aclose()
