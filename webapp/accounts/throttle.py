"""Sign-in throttling by client (OWASP ASVS 2.2.1), shared by the sign-in page and ``POST /api/token/``.

Failures are counted in Redis over a 15-minute window:

* per (username, client address): ``LOGIN_MAX_FAILURES`` failures and that client is refused for that name;
* per client address: ``ADDRESS_FACTOR`` times as many, across all names (one address guessing many accounts);
* per username, from every client: past ``LOGIN_MAX_FAILURES`` (a spread-out guessing attack), each *failing*
  client must also wait a short, growing delay before its next try for that name.

No counter stands in the way of a client that has not failed: nobody can lock a user out by guessing
wrong from somewhere else. The client address is ``request.remote_addr``, which is the forwarded one only
when ``TRUSTED_PROXIES`` is set (ProxyFix in webapp.security), so a client cannot pick its own by header.

When Redis is unavailable throttling is skipped (logged) rather than locking everybody out: the passwords
themselves are still checked.

Why not Flask-Limiter: it limits requests per key, whereas this counts *failures* and must let the
right password through from a client that has not failed; a request limiter cannot say that.
"""

from __future__ import annotations

import hashlib
import logging

import redis
from flask import current_app, request

from ..queue import get_redis

log = logging.getLogger(__name__)

WINDOW_SECONDS = 15 * 60
ADDRESS_FACTOR = 5  # one address may try several accounts (a shared office NAT), but not endlessly
MAX_DELAY_SECONDS = 60  # the longest wait the username-wide signal imposes on a failing client
PREFIX = "switchboard:login-failures"


def client_address() -> str:
    return request.remote_addr or "-"


def _name(username: str) -> str:
    # Hashed: any string may arrive as a username, and keys stay short and printable.
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def _keys(username: str, address: str) -> dict[str, str]:
    name = _name(username)
    return {
        "pair": f"{PREFIX}:pair:{name}:{address}",
        "addr": f"{PREFIX}:addr:{address}",
        "user": f"{PREFIX}:user:{name}",
        "delay": f"{PREFIX}:delay:{name}:{address}",
    }


def seconds_blocked(username: str, address: str) -> int:
    """Seconds until this client may try this username again; 0 when it may now."""
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    keys = _keys(username, address)
    try:
        pipe = get_redis().pipeline()
        for name in ("pair", "addr"):
            pipe.get(keys[name])
            pipe.ttl(keys[name])
        pipe.ttl(keys["delay"])
        pair_count, pair_ttl, addr_count, addr_ttl, delay_ttl = pipe.execute()
    except redis.RedisError:
        log.warning("login throttle unavailable (Redis down)")
        return 0
    wait = max(delay_ttl, 0)
    if pair_count is not None and int(pair_count) >= limit:
        wait = max(wait, pair_ttl)
    if addr_count is not None and int(addr_count) >= limit * ADDRESS_FACTOR:
        wait = max(wait, addr_ttl)
    return max(wait, 0)


def record_failure(username: str, address: str) -> None:
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    keys = _keys(username, address)
    try:
        connection = get_redis()
        pipe = connection.pipeline()
        for name in ("pair", "addr", "user"):
            pipe.incr(keys[name])
            pipe.expire(keys[name], WINDOW_SECONDS, nx=True)
        user_failures = pipe.execute()[4]
        beyond = user_failures - limit
        if beyond > 0:
            # Doubling with every failure past the limit, capped: 2, 4, 8 ... 60 seconds.
            connection.set(keys["delay"], 1, ex=min(2 ** min(beyond, 6), MAX_DELAY_SECONDS))
    except redis.RedisError:
        log.warning("login throttle unavailable (Redis down)")


def clear(username: str, address: str) -> None:
    """A successful sign-in forgets this client's failures for this name (not the username-wide count,
    which an attacker elsewhere may still be driving)."""
    keys = _keys(username, address)
    try:
        get_redis().delete(keys["pair"], keys["delay"])
    except redis.RedisError:
        pass
