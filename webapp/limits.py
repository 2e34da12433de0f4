"""Per-user and per-group limits: requests per minute, tokens per day and dollars per calendar
month (UTC), checked and reserved before a job is queued.

All counters live in Redis and change in one Lua script, so fifty requests arriving at once
cannot all see room that only one of them may take. A request reserves one slot of its
minute, an estimate of its tokens for the day and of its cost for the month, for the user and
for their primary group's pool; the worker settles the estimates against the real usage when
the reply is done (``settle``), so a budget is never overshot by more than one reply's excess
over its estimate.

Effective rules (docs/teams.md): each limit is the user's own (set by an admin) when set;
otherwise the most generous of their groups' per-member limits; otherwise the site default an
admin stored, else the configuration (DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_TOKENS_PER_DAY,
DEFAULT_MONTHLY_BUDGET). 0 means unlimited. Pooled limits are the primary group's.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from flask import current_app
from sqlalchemy import func, select

from . import attachments, groups, site_settings
from .extensions import db
from .llm.attachments import image_tokens
from .models import Generation, UsageRecord, User
from .prices import unit_prices
from .queue import get_redis

DEFAULT_OUTPUT_ESTIMATE = 1000  # tokens reserved for a reply when no max_tokens is set
RESERVATION_TTL = 2 * 24 * 3600
MICRO = 1_000_000  # money is counted in millionths of a dollar

# KEYS: user requests (the last minute's), day tokens, month micro-dollars; the pool's three; the reservation.
# ARGV: user rpm, tpd, budget; pool rpm, tpd, budget; tokens, cost; this request (its member in the
#       requests' sorted sets); day, month ttl; has pool; reservation value, reservation ttl. Every counter
#       is kept whether limited or not, so a limit set later starts from the real figure.
# Requests per minute are a sliding window: a sorted set of the requests of the last 60 s by the server's
# clock (one at the turn of a minute cannot take a second minute's allowance at once).
# Returns {0, 0} when reserved; {n, x} when limit n (1-6, the ARGV above) refuses, x the seconds until a
# request leaves the window, or the counter's value; {9, k} when the month counter k must first be seeded
# from the usage ledger. A request that costs nothing (an unpriced or free model) passes a spent budget.
_RESERVE = """
local function num(i) return tonumber(ARGV[i]) end
local function get(k) return tonumber(redis.call('GET', k) or '0') end
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function recent(k)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now_ms - 60000)
  return redis.call('ZCARD', k)
end
local pool = num(12) == 1
if num(3) > 0 and redis.call('EXISTS', KEYS[3]) == 0 then return {9, 3} end
if pool and num(6) > 0 and redis.call('EXISTS', KEYS[6]) == 0 then return {9, 6} end
local tokens, cost = num(7), num(8)
for offset = 0, (pool and 3 or 0), 3 do
  if num(1 + offset) > 0 and recent(KEYS[1 + offset]) >= num(1 + offset) then
    local oldest = redis.call('ZRANGE', KEYS[1 + offset], 0, 0, 'WITHSCORES')
    return {1 + offset, math.max(1, math.ceil((tonumber(oldest[2]) + 60000 - now_ms) / 1000))}
  end
  if num(2 + offset) > 0 and get(KEYS[2 + offset]) + tokens > num(2 + offset) then
    return {2 + offset, get(KEYS[2 + offset])}
  end
  if num(3 + offset) > 0 and cost > 0 and get(KEYS[3 + offset]) + cost > num(3 + offset) then
    return {3 + offset, get(KEYS[3 + offset])}
  end
end
for offset = 0, (pool and 3 or 0), 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[1 + offset], '-inf', now_ms - 60000)
  redis.call('ZADD', KEYS[1 + offset], now_ms, ARGV[9])
  redis.call('PEXPIRE', KEYS[1 + offset], 60000)
  redis.call('INCRBY', KEYS[2 + offset], tokens)
  redis.call('EXPIRE', KEYS[2 + offset], ARGV[10], 'NX')
  redis.call('INCRBY', KEYS[3 + offset], cost)
  redis.call('EXPIRE', KEYS[3 + offset], ARGV[11], 'NX')
end
redis.call('SET', KEYS[7], ARGV[13], 'EX', ARGV[14])
return {0, 0}
"""


class LimitExceeded(Exception):
    status_code = 429
    code = "limit_exceeded"  # the generation's error code and the API's

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(int(retry_after), 1)


class BudgetExceeded(LimitExceeded):
    """A monthly budget (the user's or the pool's) has no room for this request."""

    code = "insufficient_quota"  # OpenAI's code for a spent quota


@dataclass
class Pool:
    """The primary group's pooled limits (0 = unlimited)."""

    group_id: int
    name: str
    requests_per_minute: int
    tokens_per_day: int
    monthly_budget: float


@dataclass
class Limits:
    requests_per_minute: int
    tokens_per_day: int
    monthly_budget: float = 0.0  # dollars per calendar month (UTC)
    pool: Pool | None = None


def _site_default(key: str, config_key: str, kind=int):
    stored = site_settings.snapshot().site.get(key)
    value = stored if stored not in (None, "") else current_app.config.get(config_key)
    return kind(value or 0)


def most_generous(own, group_values, default):
    """The user's own value when set; else the most generous group value (0 = unlimited wins); else the default."""
    if own is not None:
        return own
    values = [v for v in group_values if v is not None]
    if not values:
        return default
    return 0 if 0 in values else max(values)


def effective_limits(user: User, user_groups: list[groups.GroupRules] | None = None) -> Limits:
    if user_groups is None:
        user_groups = groups.user_groups(user)
    primary = groups.primary_group(user_groups)
    pool = None
    if primary is not None:
        pool = Pool(
            primary.id,
            primary.name,
            int(primary.pooled_requests_per_minute or 0),
            int(primary.pooled_tokens_per_day or 0),
            float(primary.pooled_monthly_budget or 0),
        )
    return Limits(
        int(
            most_generous(
                user.requests_per_minute,
                [g.member_requests_per_minute for g in user_groups],
                _site_default(site_settings.DEFAULT_REQUESTS_PER_MINUTE, "DEFAULT_REQUESTS_PER_MINUTE"),
            )
        ),
        int(
            most_generous(
                user.tokens_per_day,
                [g.member_tokens_per_day for g in user_groups],
                _site_default(site_settings.DEFAULT_TOKENS_PER_DAY, "DEFAULT_TOKENS_PER_DAY"),
            )
        ),
        float(
            most_generous(
                user.monthly_budget,
                [g.member_monthly_budget for g in user_groups],
                _site_default(site_settings.DEFAULT_MONTHLY_BUDGET, "DEFAULT_MONTHLY_BUDGET", float),
            )
        ),
        pool,
    )


def estimate_tokens(generation: Generation) -> int:
    """Input (about four characters a token) plus the reply's cap."""
    return sum(estimate_split(generation))


def estimate_split(generation: Generation) -> tuple[int, int]:
    """(input, output) tokens: about four characters a token in, the reply's cap out."""
    characters = len(generation.system_prompt or "")
    if generation.request_messages:
        characters += sum(len(str(m.get("content") or "")) for m in generation.request_messages)
    elif generation.message is not None:
        conversation = generation.message.conversation
        characters += sum(len(m.content) for m in conversation.messages if m.id <= generation.message.id)
        characters += sum(
            len(m.reply.text or "")
            for m in conversation.messages
            if m.id < generation.message.id and m.reply is not None
        )
    output = (generation.options or {}).get("max_tokens") or DEFAULT_OUTPUT_ESTIMATE
    return characters // 4 + _image_tokens(generation), int(output)


def _image_tokens(generation: Generation) -> int:
    """The attached images' tokens after OpenAI's tile rule: images cannot dodge the day's token limit."""
    if generation.request_messages:
        ids = [i for m in generation.request_messages for i in m.get("attachments") or ()]
        sizes = attachments.image_sizes(attachment_ids=ids) if ids else []
    elif generation.message is not None:
        message = generation.message
        sizes = attachments.image_sizes(message_ids=[m.id for m in message.conversation.messages if m.id <= message.id])
    else:
        sizes = []
    return sum(image_tokens(width, height) for width, height in sizes)


def _month(now: float) -> str:
    return time.strftime("%Y%m", time.gmtime(now))


def _keys(owner: str, now: float) -> tuple[str, str, str]:
    """The last minute's requests, the day's tokens and the month's spend of ``owner`` ("7" for a user,
    "group:3" for a pool)."""
    day = time.strftime("%Y%m%d", time.gmtime(now))
    prefix = f"switchboard:limits:{owner}"
    return f"{prefix}:requests", f"{prefix}:tpd:{day}", f"{prefix}:usd:{_month(now)}"


def _seconds_to_midnight(now: float) -> int:
    return 86400 - int(now) % 86400


def month_reset(now: float) -> datetime:
    """The start of the next calendar month (UTC), when monthly budgets reset."""
    today = datetime.fromtimestamp(now, UTC)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def _seconds_to_month_end(now: float) -> int:
    return max(int(math.ceil(month_reset(now).timestamp() - now)), 1)


def _in_words(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min"


def dollars(amount: float) -> str:
    """$0.10, $12.50, and small sums to the cent's hundredth ($0.0042)."""
    return f"${amount:,.2f}" if amount >= 1 or round(amount, 2) == amount else f"${amount:,.4f}"


def _micro(amount: float) -> int:
    """Dollars to whole micro-dollars, rounded up (after rounding off float noise: 0.03 is 30000, not 30001)."""
    return int(math.ceil(round(amount * MICRO, 3)))


def estimate_cost(generation: Generation, tokens: tuple[int, int] | None = None) -> tuple[int, tuple[float, float]]:
    """The generation's estimated cost in micro-dollars, and its model's (input, output) price per token
    (0 when no price is known: an unpriced model is not charged; docs/teams.md)."""
    prices = unit_prices(generation.model_id, generation.provider) or (0.0, 0.0)
    if prices == (0.0, 0.0):
        return 0, prices
    input_tokens, output_tokens = tokens or estimate_split(generation)
    return _micro(input_tokens * prices[0] + output_tokens * prices[1]), prices


def ledger_spend(now: float, user_id: int | None = None, group_id: int | None = None) -> float:
    """Dollars settled this calendar month by a user or charged to a group, from the usage ledger."""
    start = datetime.fromtimestamp(now, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    statement = select(func.coalesce(func.sum(UsageRecord.cost), 0.0)).where(
        UsageRecord.created_at >= start.replace(tzinfo=None)
    )
    if user_id is not None:
        statement = statement.where(UsageRecord.user_id == user_id)
    if group_id is not None:
        statement = statement.where(UsageRecord.group_id == group_id)
    return float(db.session.scalar(statement) or 0.0)


def _seed_month(connection: redis.Redis, key: str, spent: float, now: float) -> None:
    # NX: another request may have seeded (or counted) it meanwhile.
    connection.set(key, int(round(spent * MICRO)), nx=True, ex=_seconds_to_month_end(now) + 86400)


def reserve(user: User, generation: Generation, user_groups: list[groups.GroupRules] | None = None) -> None:
    """Take one request, the estimated tokens and the estimated cost from the user's allowance and their
    pool's, or raise ``LimitExceeded`` (``BudgetExceeded`` for a monthly budget) saying which and when it resets."""
    limits = effective_limits(user, user_groups)
    pool = limits.pool
    priced = unit_prices(generation.model_id, generation.provider) not in (None, (0.0, 0.0))
    limited = (
        limits.requests_per_minute > 0
        or limits.tokens_per_day > 0
        or limits.monthly_budget > 0
        or (pool is not None and (pool.requests_per_minute or pool.tokens_per_day or pool.monthly_budget))
    )
    if not limited and not priced:
        return  # nothing to enforce or count
    now = time.time()
    user_keys = _keys(str(user.id), now)
    pool_keys = _keys(f"group:{pool.group_id}", now) if pool is not None else user_keys
    needs_tokens = limits.tokens_per_day > 0 or (pool is not None and pool.tokens_per_day > 0)
    split = estimate_split(generation) if (needs_tokens or priced) else (0, 0)
    tokens = sum(split) if needs_tokens else 0
    cost, prices = estimate_cost(generation, split) if priced else (0, (0.0, 0.0))
    reservation = json.dumps(
        {
            "day": [user_keys[1], pool_keys[1] if pool is not None else None],
            "month": [user_keys[2], pool_keys[2] if pool is not None else None],
            "tokens": tokens,
            "cost": cost,
            "prices": list(prices),
        }
    )
    connection = get_redis()
    for _attempt in range(3):
        refused, value = connection.eval(
            _RESERVE,
            7,
            *user_keys,
            *pool_keys,
            _reservation_key(generation.id),
            limits.requests_per_minute,
            limits.tokens_per_day,
            int(round(limits.monthly_budget * MICRO)),
            pool.requests_per_minute if pool else 0,
            pool.tokens_per_day if pool else 0,
            int(round(pool.monthly_budget * MICRO)) if pool else 0,
            tokens,
            cost,
            f"{generation.id}",
            _seconds_to_midnight(now) + 3600,
            _seconds_to_month_end(now) + 86400,
            1 if pool is not None else 0,
            reservation,
            RESERVATION_TTL,
        )
        if refused != 9:
            break
        # A month counter is missing (a new month, a budget set just now, Redis emptied): start it from
        # what the ledger says was spent, then try again.
        if value == 3:
            _seed_month(connection, user_keys[2], ledger_spend(now, user_id=user.id), now)
        else:
            _seed_month(connection, pool_keys[2], ledger_spend(now, group_id=pool.group_id), now)
    if refused:
        _refuse(refused, value, limits, cost, now)


def _refuse(which: int, value: int, limits: Limits, cost: int, now: float):
    pool = limits.pool
    if which in (1, 4):
        limit = limits.requests_per_minute if which == 1 else pool.requests_per_minute
        wait = value if value and value > 0 else 60
        whose = "your" if which == 1 else f"your group {pool.name}'s pooled"
        raise LimitExceeded(
            f"You have reached {whose} limit of {limit} requests per minute. You can send again in {wait} seconds.",
            wait,
        )
    if which in (2, 5):
        limit = limits.tokens_per_day if which == 2 else pool.tokens_per_day
        wait = _seconds_to_midnight(now)
        hours, minutes = divmod(wait // 60, 60)
        whose = "You have used your" if which == 2 else f"Your group {pool.name} has used its pooled"
        raise LimitExceeded(
            f"{whose} {limit} tokens for today. The allowance resets at midnight UTC, in {hours} h {minutes} min.",
            wait,
        )
    budget = limits.monthly_budget if which == 3 else pool.monthly_budget
    spent = int(value or 0) / MICRO
    reset = month_reset(now)
    wait = _seconds_to_month_end(now)
    whose = "your monthly budget" if which == 3 else f"the monthly budget your group {pool.name} shares"
    if spent * MICRO >= budget * MICRO:
        what = f"This month's spending has reached {whose} of {dollars(budget)} ({dollars(spent)} used)."
    else:  # room is left, but less than this request could cost
        what = (
            f"This request could cost up to {dollars(cost / MICRO)}, more than is left of {whose} "
            f"of {dollars(budget)} ({dollars(spent)} used)."
        )
    raise BudgetExceeded(f"{what} It resets on {reset:%Y-%m-%d} at 00:00 UTC, in {_in_words(wait)}.", wait)


def _reservation_key(generation_id: int) -> str:
    return f"switchboard:limits:reservation:{generation_id}"


def settle(
    connection: redis.Redis,
    generation_id: int,
    used_tokens: int | None,
    usage_=None,
    answered_by: tuple[str, str] | None = None,
) -> None:
    """Replace the generation's estimates with what it really used (0 when it never ran).

    ``usage_`` (with ``input_tokens`` and ``output_tokens``) prices the real cost; without it the
    tokens are priced at the higher of the two prices. ``answered_by`` (model id, provider): a fallback
    answered, so its prices count, not those of the model the reservation was made for.
    """
    reservation = connection.getdel(_reservation_key(generation_id))
    if reservation is None:
        return
    try:
        record = json.loads(reservation)
    except ValueError:  # a reservation from before budgets: "day key|tokens"
        day_key, reserved = reservation.decode().rsplit("|", 1)
        record = {"day": [day_key, None], "month": [None, None], "tokens": int(reserved), "cost": 0, "prices": [0, 0]}
    used = int(used_tokens or 0)
    token_difference = used - int(record["tokens"]) if record["tokens"] else 0
    input_price, output_price = record["prices"]
    if answered_by is not None:
        input_price, output_price = unit_prices(*answered_by) or (0.0, 0.0)
    if usage_ is not None and (usage_.input_tokens is not None or usage_.output_tokens is not None):
        real = (usage_.input_tokens or 0) * input_price + (usage_.output_tokens or 0) * output_price
    else:
        real = used * max(input_price, output_price)
    cost_difference = _micro(real) - int(record["cost"])
    with connection.pipeline(transaction=False) as pipe:
        for key in record["day"]:
            if key and token_difference:
                pipe.incrby(key, token_difference)
        for key in record["month"]:
            if key and cost_difference:
                pipe.incrby(key, cost_difference)
        pipe.execute()
