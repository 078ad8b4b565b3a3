"""The Valkey state store: agent records, task dedupe, event history, atomic transitions.

Layout (``<p>`` is the key prefix, ``mosaic`` by default, unique per test):

- ``<p>:agent:<agentId>``  hash, one JSON-encoded value per ``AgentRecord`` field, plus ``seq``
- ``<p>:agent:<agentId>:events``  list of ``AgentEvent`` JSON, in order
- ``<p>:agent:<agentId>:conversation``  list of ``ConversationEntry`` JSON (redacted,
  capped), and ``...:conversation:dropped`` how many older entries the cap dropped
- ``<p>:task:<taskId>``  the agent id that owns the task (dedupe of submissions)
- ``<p>:agents``  sorted set of agent ids by creation time
- ``<p>:spend:day:<YYYY-MM-DD>``  hash: the UTC day's spend (``usd``, token counts, per
  agent type, per model and per federation peer), kept ``SPEND_DAYS_KEPT`` days
- ``<p>:spend:totals``  hash: all-time spend by model and agent type (Prometheus counters)
- ``<p>:budget:hold:<day>`` / ``<p>:budget:resumed:<day>``  the day's budget hold, and
  the mark an admin's resume leaves so the day's budget does not hold again
- ``<p>:agent:<agentId>:trace``  the ``traceparent`` of the task's root span (TTL)
- ``<p>:trace:<traceId>:spans``  list of ``TraceSpan`` JSON, capped (TTL)

Every state change is one Lua script: check the current values, write the new ones, bump
``seq`` and append the event, all or nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from redis.asyncio import Redis

from shared.errors import IllegalTransitionError, MosaicError, NotFoundError, StaleAttemptError
from shared.federation.agents import owner_key
from shared.lifecycle import agent_sources, task_sources
from shared.messages.agents import (
    AgentEvent,
    AgentPatch,
    AgentRecord,
    AgentState,
    TaskState,
)
from shared.messages.base import utcnow
from shared.messages.conversation import (
    CONVERSATION_MAX_ENTRIES,
    ConversationEntry,
    ConversationPage,
)
from shared.messages.spend import Spend, TokenUsage
from shared.messages.traces import TraceSpan
from shared.spending import CHARGE, SPEND_FIELDS, TOKEN_FIELDS, Charged, utc_day
from shared.tracing import current_trace_id

SPEND_DAYS_KEPT = 40
"""How long a day's spend (and its hold) is kept, in days."""

_CREATE = """
if redis.call('SET', KEYS[2], ARGV[1], 'NX') == false then
  return {0, redis.call('GET', KEYS[2])}
end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[2])))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'state:' .. ARGV[4], 1)
redis.call('HINCRBY', KEYS[4], 'task_state:' .. ARGV[5], 1)
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'seq', 1)
  redis.call('RPUSH', KEYS[5], ARGV[6])
end
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[6], ARGV[7], 'EX', ARGV[8])
end
return {1, ARGV[1]}
"""

_FENCE = """
local function stale(fence)
  if not fence then return nil end
  local raw = redis.call('HGET', KEYS[1], 'attempts')
  local current = tonumber(raw or '0') or 0
  if current > fence then return {-2, 'attempts', tostring(current)} end
  return nil
end
"""
"""Refuses a write whose fencing token (its attempt) is older than the record's
``attempts``: a spawner that lost its task can no longer change it."""

_TRANSITION = (
    _FENCE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local spec = cjson.decode(ARGV[1])
if redis.call('HGET', KEYS[4], 'op') == spec.op then
  return {1, '', redis.call('HGET', KEYS[4], 'event')}
end
local refused = stale(spec.fence)
if refused then return refused end
for field, allowed in pairs(spec.checks) do
  local current = redis.call('HGET', KEYS[1], field)
  local ok = false
  for _, value in ipairs(allowed) do
    if current == value then ok = true break end
  end
  if not ok then return {0, field, current or ''} end
end
local previous = {}
for field, _ in pairs(spec.checks) do previous[field] = redis.call('HGET', KEYS[1], field) end
if #spec.set > 0 then redis.call('HSET', KEYS[1], unpack(spec.set)) end
for field, item in pairs(spec.append) do
  local list = cjson.decode(redis.call('HGET', KEYS[1], field) or '[]')
  if type(list) ~= 'table' then list = {} end
  table.insert(list, item)
  redis.call('HSET', KEYS[1], field, cjson.encode(list))
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = string.gsub(spec.event, '"seq":0', '"seq":' .. seq, 1)
local before = previous[spec.primary]
if before then event = string.gsub(event, '"previous":null', '"previous":' .. before, 1) end
redis.call('RPUSH', KEYS[2], event)
for field, value in pairs(spec.targets) do
  if previous[field] then
    redis.call('HINCRBY', KEYS[3], field .. ':' .. cjson.decode(previous[field]), -1)
  end
  redis.call('HINCRBY', KEYS[3], field .. ':' .. value, 1)
end
redis.call('HSET', KEYS[4], 'op', spec.op, 'event', event)
return {1, '', event}
"""
)

_FENCED_UPDATE = (
    _FENCE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local refused = stale(tonumber(ARGV[1]))
if refused then return refused end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[2])))
return {1, ''}
"""
)

_FENCED_EVENT = (
    _FENCE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local refused = stale(tonumber(ARGV[1]))
if refused then return refused end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = string.gsub(ARGV[2], '"seq":0', '"seq":' .. seq, 1)
redis.call('RPUSH', KEYS[2], event)
return {1, '', event}
"""
)

_DELETE = """
local agent = KEYS[1]
if redis.call('EXISTS', agent) == 1 then
  for _, field in ipairs({'state', 'task_state'}) do
    local value = redis.call('HGET', agent, field)
    if value then redis.call('HINCRBY', KEYS[5], field .. ':' .. cjson.decode(value), -1) end
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""

_APPEND_CONVERSATION = (
    _FENCE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local refused = stale(tonumber(ARGV[2]))
if refused then return refused end
local cap = tonumber(ARGV[1])
local length = 0
for i = 3, #ARGV do length = redis.call('RPUSH', KEYS[2], ARGV[i]) end
if length > cap then
  redis.call('LTRIM', KEYS[2], length - cap, -1)
  redis.call('INCRBY', KEYS[3], length - cap)
end
return {1, ''}
"""
)


def _enc(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Transition:
    """One state move of one agent, as ``StateStore.transition`` takes it (its keyword
    arguments, named in one value so that many can be written together)."""

    agent_id: str
    task_id: str
    agent: AgentState | None = None
    task: TaskState | None = None
    fields: Mapping[str, Any] | None = None
    detail: Mapping[str, Any] | None = None
    fence: int | None = None
    append: Mapping[str, str] | None = None
    trace_id: str | None = None
    """The trace its event belongs to; None: the current one (where the move is written)."""


class AgentStanding(NamedTuple):
    """Where an agent stands, without the rest of its record (``StateStore.standings``)."""

    state: AgentState
    task_state: TaskState | None
    completed_at: datetime | None


class StateStore:
    """Typed access to agent state in Valkey; safe to share across tasks."""

    def __init__(self, redis: Redis, prefix: str = "mosaic") -> None:
        self._redis = redis
        self._prefix = prefix
        self._create = redis.register_script(_CREATE)
        self._transition = redis.register_script(_TRANSITION)
        self._delete = redis.register_script(_DELETE)
        self._fenced_update = redis.register_script(_FENCED_UPDATE)
        self._fenced_event = redis.register_script(_FENCED_EVENT)
        self._append_conversation = redis.register_script(_APPEND_CONVERSATION)
        self._charge = redis.register_script(CHARGE)

    @property
    def prefix(self) -> str:
        """What every key of this store starts with (``ValkeySettings.state_prefix``)."""
        return self._prefix

    @property
    def redis(self) -> Redis:
        """The underlying client, for callers that keep their own keys."""
        return self._redis

    def key(self, *parts: str) -> str:
        """A key under this store's prefix."""
        return ":".join((self._prefix, *parts))

    async def create_agent(
        self,
        record: AgentRecord,
        *,
        first_event: AgentEvent | None = None,
        traceparent: str | None = None,
        trace_ttl_s: int = 0,
    ) -> tuple[str, bool]:
        """Store a new agent unless its task exists; returns (agent id, created).

        With ``first_event`` it becomes event seq 1 of the new agent's history, and with
        ``traceparent`` the trace of the agent's root span is kept for ``trace_ttl_s``,
        in the same atomic step (one round trip for an accept, and a record never exists
        without its first event)."""
        fields: list[str] = []
        for name, value in record.model_dump(mode="json", by_alias=False).items():
            fields += [name, _enc(value)]
        fields += ["seq", "0"]
        event = first_event.model_copy(update={"seq": 1}) if first_event is not None else None
        created, agent_id = await self._create(
            keys=[
                self.key("agent", record.agent_id),
                self.key("task", record.task_id),
                self.key("agents"),
                self.key("counts"),
                self.key("agent", record.agent_id, "events"),
                self.key("agent", record.agent_id, "trace"),
            ],
            args=[
                record.agent_id,
                _enc(fields),
                record.created_at.timestamp(),
                record.state.value,
                record.task_state.value,
                event.model_dump_json() if event is not None else "",
                traceparent or "",
                max(int(trace_ttl_s), 1),
            ],
        )
        return _text(agent_id), bool(created)

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        """The agent's record, or None."""
        raw = await self._redis.hgetall(self.key("agent", agent_id))
        if not raw:
            return None
        data = {_text(k): json.loads(v) for k, v in raw.items() if _text(k) != "seq"}
        return AgentRecord.model_validate(data)

    async def get_agents(self, agent_ids: list[str], chunk: int = 1000) -> list[AgentRecord]:
        """The records of ``agent_ids`` that exist, in order, read in pipelined chunks
        (one connection, however many ids: a ``gather`` of ``get_agent`` would open one
        connection each and run out of them)."""
        out: list[AgentRecord] = []
        for start in range(0, len(agent_ids), chunk):
            async with self._redis.pipeline(transaction=False) as pipe:
                for agent_id in agent_ids[start : start + chunk]:
                    pipe.hgetall(self.key("agent", agent_id))
                rows = await pipe.execute()
            for raw in rows:
                if raw:
                    data = {_text(k): json.loads(v) for k, v in raw.items() if _text(k) != "seq"}
                    out.append(AgentRecord.model_validate(data))
        return out

    async def states(self, agent_ids: Sequence[str]) -> dict[str, AgentState]:
        """The state of each of ``agent_ids`` that exists, in one pipelined read (a
        poll over many agents reads one field each, not their records)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.hget(self.key("agent", agent_id), "state")
            raw = await pipe.execute()
        return {
            agent_id: AgentState(json.loads(value))
            for agent_id, value in zip(agent_ids, raw, strict=True)
            if value is not None
        }

    async def standings(self, agent_ids: Sequence[str]) -> dict[str, AgentStanding]:
        """State, task state and completion time of each of ``agent_ids`` that exists, in
        one pipelined read: what a kill-all asks of every agent (parsing 100 whole
        records took the gateway a third of a second while the kills were under way)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.hmget(self.key("agent", agent_id), "state", "task_state", "completed_at")
            rows = await pipe.execute()
        found: dict[str, AgentStanding] = {}
        for agent_id, (state, task_state, completed_at) in zip(agent_ids, rows, strict=True):
            if state is None:
                continue
            task = json.loads(task_state) if task_state is not None else None
            done = json.loads(completed_at) if completed_at is not None else None
            found[agent_id] = AgentStanding(
                AgentState(json.loads(state)),
                TaskState(task) if task is not None else None,
                datetime.fromisoformat(done) if done is not None else None,
            )
        return found

    async def require_agent(self, agent_id: str) -> AgentRecord:
        """The agent's record, or ``NotFoundError``."""
        record = await self.get_agent(agent_id)
        if record is None:
            raise NotFoundError(f"no agent {agent_id!r}")
        return record

    async def agent_for_task(self, task_id: str) -> str | None:
        """The agent id that owns ``task_id``, if any."""
        value = await self._redis.get(self.key("task", task_id))
        return _text(value) if value is not None else None

    async def list_agent_ids(self, offset: int = 0, limit: int = 100) -> list[str]:
        """Agent ids, newest first."""
        ids = await self._redis.zrevrange(self.key("agents"), offset, offset + limit - 1)
        return [_text(i) for i in ids if isinstance(i, bytes | str)]

    async def count_agents(self) -> int:
        """How many agent records exist."""
        return int(await self._redis.zcard(self.key("agents")))

    async def update(self, agent_id: str, patch: AgentPatch, *, fence: int | None = None) -> None:
        """Write the fields ``patch`` gives; state only moves via ``transition``.

        With ``fence`` (the writer's attempt) the write is refused with
        ``StaleAttemptError`` once a later attempt has claimed the task.
        """
        fields = patch.written()
        if not fields:
            return
        flat: list[str] = []
        for name, value in fields.items():
            flat += [name, _enc(_jsonable(value))]
        if fence is None:
            await self._redis.hset(self.key("agent", agent_id), items=flat)
            return
        result = await self._fenced_update(
            keys=[self.key("agent", agent_id)], args=[fence, _enc(flat)]
        )
        _check_fenced(agent_id, fence, result)

    async def transition(
        self,
        agent_id: str,
        *,
        task_id: str,
        agent: AgentState | None = None,
        task: TaskState | None = None,
        fields: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
        fence: int | None = None,
        append: Mapping[str, str] | None = None,
        op: str | None = None,
    ) -> AgentEvent:
        """Move the agent and/or task state atomically, or raise ``IllegalTransitionError``.

        Idempotent: the write carries an id (``op``, a fresh one by default) and the same
        write sent again (redis-py resends a command whose connection dropped before the
        answer came, e.g. while Valkey restarts) answers the event it recorded the first
        time instead of refusing ``executing -> executing``.

        ``fence`` is the writer's attempt number (its fencing token): the script refuses
        the write with ``StaleAttemptError`` when the record's ``attempts`` is larger,
        i.e. another spawner claimed the task since. ``append`` adds one item to list
        fields (``attempt_reasons``) in the same step. The returned event (with its
        ``seq``) is already in the history list; the caller publishes it.
        """
        move = Transition(agent_id, task_id, agent, task, fields, detail, fence, append)
        return await self.write(move, op)

    async def write(self, move: Transition, op: str | None = None) -> AgentEvent:
        """``transition``, of a move made as a value."""
        keys, args, sets = self._transition_call(move, op)
        outcome = _transition_outcome(move, sets, await self._transition(keys=keys, args=args))
        if isinstance(outcome, MosaicError):
            raise outcome
        return outcome

    async def transition_many(self, moves: Sequence[Transition]) -> list[AgentEvent | MosaicError]:
        """Each of ``moves`` as ``transition`` makes it, all in one pipelined round trip
        (a kill-all's records: one by one, a hundred of them were written between the
        runs' other work). Each answers for itself: its event, or the error
        ``transition`` would have raised (illegal, stale, not found). Not idempotent on
        a resend (no ``op``): for writes whose repeat is refused harmlessly."""
        if not moves:
            return []
        calls = [self._transition_call(move, None) for move in moves]
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                await self._transition(keys=keys, args=args, client=pipe)
            answers = await pipe.execute()
        return [
            _transition_outcome(move, sets, answer)
            for move, (_, _, sets), answer in zip(moves, calls, answers, strict=True)
        ]

    def _transition_call(
        self, move: Transition, op: str | None
    ) -> tuple[list[str], list[str], dict[str, Any]]:
        """The transition script's keys and argument for ``move``, and the fields it sets."""
        checks: dict[str, list[str]] = {}
        sets: dict[str, Any] = dict(move.fields or {})
        if move.agent is not None:
            checks["state"] = [_enc(s.value) for s in agent_sources(move.agent)]
            sets["state"] = move.agent.value
        if move.task is not None:
            checks["task_state"] = [_enc(s.value) for s in task_sources(move.task)]
            sets["task_state"] = move.task.value
        agent, task = move.agent, move.task
        event = AgentEvent(
            agent_id=move.agent_id,
            task_id=move.task_id,
            kind="state" if agent is not None else "task_state",
            state=agent.value if agent else (task.value if task else None),
            detail={**(move.detail or {}), **({"taskState": task.value} if task and agent else {})},
            trace_id=move.trace_id or current_trace_id(),
        )
        flat: list[str] = []
        for name, value in sets.items():
            flat += [name, _enc(_jsonable(value))]
        spec: dict[str, Any] = {
            "checks": checks,
            "set": flat,
            "event": event.model_dump_json(),
            "primary": "state" if agent is not None else "task_state",
            "targets": {f: sets[f] for f in checks},
            "append": dict(move.append or {}),
            "op": op or uuid.uuid4().hex,
        }
        if move.fence is not None:
            spec["fence"] = move.fence
        keys = [
            self.key("agent", move.agent_id),
            self.key("agent", move.agent_id, "events"),
            self.key("counts"),
            self.key("agent", move.agent_id, "lastop"),
        ]
        return keys, [_enc(spec)], sets

    async def append_event(self, event: AgentEvent, *, fence: int | None = None) -> AgentEvent:
        """Record a non-state event (progress, cleanup) in the agent's history, with a seq
        (refused with ``StaleAttemptError`` when ``fence`` is an older attempt)."""
        if fence is not None:
            result = await self._fenced_event(
                keys=[
                    self.key("agent", event.agent_id),
                    self.key("agent", event.agent_id, "events"),
                ],
                args=[fence, event.model_dump_json()],
            )
            _check_fenced(event.agent_id, fence, result)
            return AgentEvent.from_bytes(result[2])
        seq = await self._redis.hincrby(self.key("agent", event.agent_id), "seq", 1)
        stored = event.model_copy(update={"seq": int(seq)})
        await self._redis.rpush(
            self.key("agent", event.agent_id, "events"), stored.model_dump_json()
        )
        return stored

    async def events(self, agent_id: str, start: int = 0, stop: int = -1) -> list[AgentEvent]:
        """The agent's event history in order."""
        raw = await self._redis.lrange(self.key("agent", agent_id, "events"), start, stop)
        return [AgentEvent.from_bytes(r) for r in raw]

    async def delete_agent(self, agent_id: str, task_id: str) -> None:
        """Remove every key of an agent (used when a submission could not be queued)."""
        await self._delete(
            keys=[
                self.key("agent", agent_id),
                self.key("agent", agent_id, "events"),
                self.key("task", task_id),
                self.key("agents"),
                self.key("counts"),
                self.key("agent", agent_id, "lastop"),
                self.key("agent", agent_id, "conversation"),
                self.key("agent", agent_id, "conversation", "dropped"),
                self.key("agent", agent_id, "lastcharge"),
            ],
            args=[agent_id],
        )

    async def append_conversation(
        self,
        agent_id: str,
        entries: list[ConversationEntry],
        cap: int = CONVERSATION_MAX_ENTRIES,
        *,
        fence: int | None = None,
    ) -> None:
        """Append entries (already redacted and capped: ``conversation_entry``) to the
        agent's conversation, keeping the newest ``cap``; ``NotFoundError`` for an agent
        that does not exist (so a deleted agent's conversation does not grow back),
        ``StaleAttemptError`` when ``fence`` is an attempt a later one replaced."""
        if not entries:
            return
        result = await self._append_conversation(
            keys=[
                self.key("agent", agent_id),
                self.key("agent", agent_id, "conversation"),
                self.key("agent", agent_id, "conversation", "dropped"),
            ],
            args=[cap, "" if fence is None else fence, *(e.model_dump_json() for e in entries)],
        )
        _check_fenced(agent_id, fence or 0, result)

    async def conversation(self, agent_id: str, offset: int, limit: int) -> ConversationPage:
        """A page of the agent's conversation, oldest kept entry first."""
        key = self.key("agent", agent_id, "conversation")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, offset, offset + limit - 1)
            pipe.llen(key)
            pipe.get(self.key("agent", agent_id, "conversation", "dropped"))
            raw, total, dropped = await pipe.execute()
        return ConversationPage(
            agent_id=agent_id,
            entries=tuple(ConversationEntry.from_bytes(r) for r in raw),
            offset=offset,
            limit=limit,
            total=int(total),
            dropped=int(dropped or 0),
        )

    async def set_agent_trace(self, agent_id: str, traceparent: str, ttl_s: int) -> None:
        """Remember the ``traceparent`` of the agent's root span (a kill continues it)."""
        await self._redis.set(self.key("agent", agent_id, "trace"), traceparent, ex=ttl_s)

    async def agent_trace(self, agent_id: str) -> str | None:
        """The ``traceparent`` of the agent's root span, None when none is kept."""
        value = await self._redis.get(self.key("agent", agent_id, "trace"))
        return _text(value) if value is not None else None

    async def add_trace_spans(
        self, trace_id: str, spans: list[TraceSpan], *, cap: int, ttl_s: int
    ) -> None:
        """Append finished spans to a trace: the newest ``cap`` are kept, for ``ttl_s``
        after the last one arrived."""
        if not spans:
            return
        key = self.key("trace", trace_id, "spans")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *(span.model_dump_json() for span in spans))
            pipe.ltrim(key, -cap, -1)
            pipe.expire(key, ttl_s)
            await pipe.execute()

    async def trace_spans(self, trace_id: str) -> list[TraceSpan]:
        """The kept spans of a trace, in the order they arrived."""
        raw = await self._redis.lrange(self.key("trace", trace_id, "spans"), 0, -1)
        return [TraceSpan.model_validate_json(r) for r in raw]

    async def hold_all(self, reason: str | None, requested_by: str | None) -> None:
        """Record a kill-all: no task starts until ``release_all`` (survives restarts)."""
        value = _enc({"reason": reason, "requestedBy": requested_by, "at": utcnow().isoformat()})
        await self._redis.set(self.key("killall"), value, nx=True)

    async def release_all(self) -> bool:
        """Lift a kill-all; True if one was in force."""
        return bool(await self._redis.delete(self.key("killall")))

    async def held(self) -> dict[str, Any] | None:
        """The hold in force, if any: a kill-all (``kind: killall``) or the deployment's
        spent daily budget (``kind: budget``, until a resume or the next UTC day).
        Everything that must not start work while one is in force asks here."""
        killall, budget = await self._redis.mget(
            self.key("killall"), self.key("budget", "hold", utc_day())
        )
        return _hold(killall, budget)

    async def intake(self, task_id: str) -> tuple[str | None, dict[str, Any] | None]:
        """What a spawn asks first, in one read: the agent that already owns ``task_id``
        (or None) and the hold in force (``held``)."""
        owner, killall, budget = await self._redis.mget(
            self.key("task", task_id), self.key("killall"), self.key("budget", "hold", utc_day())
        )
        return (_text(owner) if owner is not None else None), _hold(killall, budget)

    async def release_budget(self) -> bool:
        """Lift today's budget hold for the rest of the UTC day (an admin's resume): spend
        is still counted, but the day's budget does not hold intake again. True if a
        budget hold was in force."""
        day = utc_day()
        ttl = SPEND_DAYS_KEPT * 86_400
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key("budget", "hold", day))
            pipe.set(self.key("budget", "resumed", day), utcnow().isoformat(), ex=ttl)
            lifted, _ = await pipe.execute()
        return bool(lifted)

    async def charge(
        self,
        agent_id: str,
        usage: TokenUsage,
        usd: float,
        *,
        agent_type: str,
        limit_usd: float | None,
        fence: int | None = None,
        charge_id: str | None = None,
    ) -> Charged:
        """Add one model call to the agent's spend, the UTC day's and the all-time
        counters, and hold intake (``held``) when the day's spend reaches ``limit_usd``;
        all in one step. Idempotent per ``charge_id`` (a resend after a dropped
        connection is not charged twice); fenced like ``update``."""
        day = utc_day()
        amounts: dict[str, float | int] = {"usd": usd}
        for name in TOKEN_FIELDS:
            amounts[name] = int(getattr(usage, name))
        reason = f"daily budget of ${limit_usd:.2f} reached on {day} (UTC)" if limit_usd else ""
        hold = _enc(
            {
                "reason": reason,
                "requestedBy": "budget",
                "at": utcnow().isoformat(),
                "day": day,
                "limitUsd": limit_usd,
            }
        )
        result = await self._charge(
            keys=[
                self.key("agent", agent_id),
                self.key("spend", "day", day),
                self.key("budget", "hold", day),
                self.key("budget", "resumed", day),
                self.key("spend", "totals"),
                self.key("agent", agent_id, "lastcharge"),
                owner_key(self._prefix, agent_id),
            ],
            args=[
                "" if fence is None else fence,
                _enc(amounts),
                agent_type,
                usage.model,
                "" if limit_usd is None else repr(float(limit_usd)),
                hold,
                SPEND_DAYS_KEPT * 86_400,
                charge_id or uuid.uuid4().hex,
            ],
        )
        if fence is not None:
            _check_fenced(agent_id, fence, result)
        elif int(result[0]) == -1:
            raise NotFoundError(f"no agent {agent_id!r}")
        return Charged(
            spend=Spend.model_validate_json(result[1]),
            day_usd=float(_text(result[2])),
            held=bool(int(result[3])),
            newly_held=bool(int(result[4])),
        )

    async def spend_of_days(self, days: list[str]) -> dict[str, dict[str, float]]:
        """Each of ``days``' spend hash (``usd``, token counts, ``type:<t>:usd``,
        ``model:<m>:usd``…), empty for a day with none."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self.key("spend", "day", day))
            rows = await pipe.execute()
        return {
            day: {_text(k): float(v) for k, v in row.items()}
            for day, row in zip(days, rows, strict=True)
        }

    async def peer_spend_today(self, peer_id: str) -> float:
        """What the agents ``peer_id`` spawned here spent this UTC day, in US dollars."""
        raw = await self._redis.hget(self.key("spend", "day", utc_day()), f"peer:{peer_id}:usd")
        return float(raw) if raw is not None else 0.0

    async def spend_totals(self) -> dict[str, float]:
        """All-time spend counters: ``usd|<model>|<type>`` and
        ``tokens|<model>|<type>|<kind>`` (never decrease)."""
        raw = await self._redis.hgetall(self.key("spend", "totals"))
        return {_text(k): float(v) for k, v in raw.items()}

    async def counts(self) -> dict[str, dict[str, int]]:
        """How many agents are in each agent state and task state (kept by the scripts)."""
        raw = await self._redis.hgetall(self.key("counts"))
        out: dict[str, dict[str, int]] = {"state": {}, "task_state": {}}
        for key, value in raw.items():
            field, _, state = _text(key).partition(":")
            if field in out and int(value) > 0:
                out[field][state] = int(value)
        return out


def _transition_outcome(
    move: Transition, sets: dict[str, Any], result: list[Any]
) -> AgentEvent | MosaicError:
    """The transition script's answer: the event it recorded, or why it refused."""
    status = int(result[0])
    if status == -1:
        return NotFoundError(f"no agent {move.agent_id!r}")
    if status == -2:
        return _stale(move.agent_id, move.fence, result)
    if status == 0:
        field, current = _text(result[1]), _text(result[2])
        return IllegalTransitionError(
            f"agent {move.agent_id} {field}", json.loads(current) if current else None, sets[field]
        )
    return AgentEvent.from_bytes(result[2])


def _stale(agent_id: str, fence: int | None, result: list[Any]) -> StaleAttemptError:
    return StaleAttemptError(
        f"agent {agent_id}: attempt {fence} is stale (attempt {_text(result[2])} owns the task)"
    )


def _check_fenced(agent_id: str, fence: int, result: list[Any]) -> None:
    status = int(result[0])
    if status == -1:
        raise NotFoundError(f"no agent {agent_id!r}")
    if status == -2:
        raise _stale(agent_id, fence, result)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, AgentState | TaskState):
        return value.value
    return value


__all__ = ["SPEND_FIELDS", "Charged", "StateStore", "utc_day", "utcnow"]


def _hold(killall: Any, budget: Any) -> dict[str, Any] | None:
    """The hold the two hold keys' values say is in force (a kill-all's first)."""
    if killall is not None:
        return {"kind": "killall", **json.loads(killall)}
    if budget is not None:
        return {"kind": "budget", **json.loads(budget)}
    return None
