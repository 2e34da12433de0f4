"""Per-user request and token limits, checked and reserved before a job is queued.

Both counters live in Redis and change in one Lua script, so fifty requests
arriving at once cannot all see room that only one of them may take. A request
reserves one slot of its minute and an estimate of its tokens for the day; the
worker settles the estimate against the real usage when the reply is done.

Limits come from the user (set by an admin), else the site default an admin
stored, else the configuration (DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_TOKENS_PER_DAY);
0 or empty means unlimited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from flask import current_app

from . import admin_settings
from .models import Generation, User
from .queue import get_redis

DEFAULT_OUTPUT_ESTIMATE = 1000  # tokens reserved for a reply when no max_tokens is set
RESERVATION_TTL = 2 * 24 * 3600

# KEYS: minute counter, day token counter. ARGV: rpm limit, tpd limit, tokens, minute ttl, day ttl.
# Returns {0, 0} when reserved, {1, ttl} when the minute is full, {2, ttl} when the day's tokens are spent.
_RESERVE = """
local rpm, tpd, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm > 0 and tonumber(redis.call('GET', KEYS[1]) or '0') >= rpm then
  return {1, redis.call('TTL', KEYS[1])}
end
if tpd > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') + tokens > tpd then
  return {2, redis.call('TTL', KEYS[2])}
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4], 'NX')
redis.call('INCRBY', KEYS[2], tokens)
redis.call('EXPIRE', KEYS[2], ARGV[5], 'NX')
return {0, 0}
"""


class LimitExceeded(Exception):
    status_code = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(int(retry_after), 1)


@dataclass
class Limits:
    requests_per_minute: int
    tokens_per_day: int


def _site_default(key: str, config_key: str) -> int:
    stored = admin_settings.snapshot().site.get(key)
    value = stored if stored not in (None, "") else current_app.config.get(config_key)
    return int(value or 0)


def effective_limits(user: User) -> Limits:
    return Limits(
        user.requests_per_minute
        if user.requests_per_minute is not None
        else _site_default(admin_settings.DEFAULT_REQUESTS_PER_MINUTE, "DEFAULT_REQUESTS_PER_MINUTE"),
        user.tokens_per_day
        if user.tokens_per_day is not None
        else _site_default(admin_settings.DEFAULT_TOKENS_PER_DAY, "DEFAULT_TOKENS_PER_DAY"),
    )


def estimate_tokens(generation: Generation) -> int:
    """Input (about four characters a token) plus the reply's cap."""
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
    return characters // 4 + int(output)


def _keys(user_id: int, now: float) -> tuple[str, str, str]:
    minute = int(now // 60)
    day = time.strftime("%Y%m%d", time.gmtime(now))
    return (f"switchboard:limits:{user_id}:rpm:{minute}", f"switchboard:limits:{user_id}:tpd:{day}", day)


def _seconds_to_midnight(now: float) -> int:
    return 86400 - int(now) % 86400


def reserve(user: User, generation: Generation) -> None:
    """Take one request and the estimated tokens from the user's allowance, or raise LimitExceeded."""
    limits = effective_limits(user)
    if limits.requests_per_minute <= 0 and limits.tokens_per_day <= 0:
        return
    now = time.time()
    minute_key, day_key, day = _keys(user.id, now)
    tokens = estimate_tokens(generation) if limits.tokens_per_day > 0 else 0
    connection = get_redis()
    refused, ttl = connection.eval(
        _RESERVE,
        2,
        minute_key,
        day_key,
        limits.requests_per_minute,
        limits.tokens_per_day,
        tokens,
        60 - int(now) % 60 + 1,
        _seconds_to_midnight(now) + 3600,
    )
    if refused == 1:
        wait = ttl if ttl and ttl > 0 else 60 - int(now) % 60
        raise LimitExceeded(
            f"You have reached your limit of {limits.requests_per_minute} requests per minute. "
            f"It resets in {wait} seconds.",
            wait,
        )
    if refused == 2:
        wait = _seconds_to_midnight(now)
        hours, minutes = divmod(wait // 60, 60)
        raise LimitExceeded(
            f"You have used your {limits.tokens_per_day} tokens for today. "
            f"The allowance resets at midnight UTC, in {hours} h {minutes} min.",
            wait,
        )
    if tokens:
        connection.set(_reservation_key(generation.id), f"{day_key}|{tokens}", ex=RESERVATION_TTL)


def _reservation_key(generation_id: int) -> str:
    return f"switchboard:limits:reservation:{generation_id}"


def settle(connection: redis.Redis, generation_id: int, used_tokens: int | None) -> None:
    """Replace the generation's token estimate with what it really used (0 when it never ran)."""
    reservation = connection.getdel(_reservation_key(generation_id))
    if reservation is None:
        return
    day_key, reserved = reservation.decode().rsplit("|", 1)
    difference = int(used_tokens or 0) - int(reserved)
    if difference:
        connection.incrby(day_key, difference)
