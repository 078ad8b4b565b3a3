"""Spend in the store: the Lua behind ``StateStore.charge``, what a charge answers, the UTC day.

Kept apart from ``shared/store.py`` for size only; the keys are the store's (it passes
them in). One script so an agent's spend, the day's spend, the all-time counters and the
deployment's hold can never disagree, however many spawners charge at the same time.

KEYS: 1 agent hash, 2 day hash, 3 the day's hold, 4 the day's resume mark,
5 all-time counters, 6 the agent's last charge id, 7 the federated agent's owner (the
peer that spawned it, whose day's spend ``peer:<id>:usd`` grows too).
ARGV: 1 fence ('' for none), 2 the charge (JSON: usd and the four token counts, snake
case), 3 agent type, 4 model, 5 daily limit in USD ('' for none), 6 the hold's value,
7 how long day keys live (s), 8 the charge id.
Returns ``{1, spend JSON, day usd, held, newly held}``, ``{-1}`` without the agent, or
the fence's ``{-2, 'attempts', n}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shared.messages.base import utcnow
from shared.messages.spend import Spend

SPEND_FIELDS: tuple[str, ...] = tuple(Spend.model_fields)
"""``usd`` and the four token counts, in the record's (snake case) names."""

TOKEN_FIELDS: tuple[str, ...] = tuple(f for f in SPEND_FIELDS if f != "usd")

CHARGE = """
local function stale(fence)
  if not fence then return nil end
  local current = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') or 0
  if current > fence then return {-2, 'attempts', tostring(current)} end
  return nil
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local refused = stale(tonumber(ARGV[1]))
if refused then return refused end
local previous = redis.call('GET', KEYS[6])
if previous and string.sub(previous, 1, #ARGV[8] + 1) == ARGV[8] .. '|' then
  return cjson.decode(string.sub(previous, #ARGV[8] + 2))
end
local add = cjson.decode(ARGV[2])
local raw = redis.call('HGET', KEYS[1], 'spend')
local spend = {}
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then spend = decoded end
end
local camel = {usd = 'usd', input_tokens = 'inputTokens', output_tokens = 'outputTokens',
               cache_write_tokens = 'cacheWriteTokens', cache_read_tokens = 'cacheReadTokens'}
local out = {}
for snake, cc in pairs(camel) do
  local before = tonumber(spend[snake] or spend[cc]) or 0
  out[snake] = before + (tonumber(add[snake]) or 0)
end
local encoded = cjson.encode(out)
redis.call('HSET', KEYS[1], 'spend', encoded)
local ttl = tonumber(ARGV[7])
local day_usd = tonumber(redis.call('HINCRBYFLOAT', KEYS[2], 'usd', add.usd))
redis.call('HINCRBYFLOAT', KEYS[2], 'type:' .. ARGV[3] .. ':usd', add.usd)
redis.call('HINCRBYFLOAT', KEYS[2], 'model:' .. ARGV[4] .. ':usd', add.usd)
redis.call('HINCRBYFLOAT', KEYS[5], 'usd|' .. ARGV[4] .. '|' .. ARGV[3], add.usd)
local peer = redis.call('GET', KEYS[7])
if peer then redis.call('HINCRBYFLOAT', KEYS[2], 'peer:' .. peer .. ':usd', add.usd) end
for snake, _ in pairs(camel) do
  if snake ~= 'usd' then
    local n = tonumber(add[snake]) or 0
    redis.call('HINCRBY', KEYS[2], snake, n)
    redis.call('HINCRBY', KEYS[2], 'type:' .. ARGV[3] .. ':' .. snake, n)
    redis.call('HINCRBY', KEYS[5], 'tokens|' .. ARGV[4] .. '|' .. ARGV[3] .. '|' .. snake, n)
  end
end
redis.call('EXPIRE', KEYS[2], ttl)
local newly = 0
if ARGV[5] ~= '' and day_usd >= tonumber(ARGV[5]) and redis.call('EXISTS', KEYS[4]) == 0 then
  if redis.call('SET', KEYS[3], ARGV[6], 'NX', 'EX', ttl) then newly = 1 end
end
local held = redis.call('EXISTS', KEYS[3])
local result = {1, encoded, tostring(day_usd), held, newly}
redis.call('SET', KEYS[6], ARGV[8] .. '|' .. cjson.encode(result), 'EX', 3600)
return result
"""


@dataclass(frozen=True)
class Charged:
    """What ``StateStore.charge`` left: the agent's spend, the day's, and the hold."""

    spend: Spend
    day_usd: float
    held: bool
    """A budget hold is in force for the day (this charge or an earlier one)."""
    newly_held: bool
    """This charge reached the daily budget: whoever made it writes the audit entry."""


def utc_day(at: datetime | None = None) -> str:
    """The UTC day budgets count in, as ``YYYY-MM-DD``."""
    return (at or utcnow()).astimezone(UTC).date().isoformat()
