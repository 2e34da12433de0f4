"""Login throttling: failed attempts counted per username and per client address in Redis.

When Redis is unavailable throttling is skipped (logged) rather than locking
everybody out: the passwords themselves are still checked.
"""
from __future__ import annotations

import logging

import redis
from flask import current_app

from .queue import get_redis

log = logging.getLogger(__name__)

WINDOW_SECONDS = 15 * 60
ADDRESS_FACTOR = 5  # one address may try several accounts (a shared office NAT), but not endlessly


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    return [
        (f"switchboard:login-failures:user:{username.strip().lower()}", limit),
        (f"switchboard:login-failures:addr:{address}", limit * ADDRESS_FACTOR),
    ]


def seconds_blocked(username: str, address: str) -> int:
    """Seconds until another attempt is allowed; 0 when it is allowed now."""
    try:
        connection = get_redis()
        wait = 0
        for key, limit in _keys(username, address):
            count = connection.get(key)
            if count is not None and int(count) >= limit:
                wait = max(wait, connection.ttl(key))
        return max(wait, 0)
    except redis.RedisError:
        log.warning("login throttle unavailable (Redis down)")
        return 0


def record_failure(username: str, address: str) -> None:
    try:
        pipe = get_redis().pipeline()
        for key, _limit in _keys(username, address):
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS, nx=True)
        pipe.execute()
    except redis.RedisError:
        pass


def clear(username: str) -> None:
    try:
        get_redis().delete(_keys(username, "")[0][0])
    except redis.RedisError:
        pass
