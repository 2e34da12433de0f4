"""Which models are cooling down: kept in Redis, so every worker on every host skips the same ones.

Each failure of a kind that says something about the model's health (rate limited, provider down, key
refused) is counted in a sliding window (a sorted set of times per model and kind). When a kind reaches
its count within the window, the model cools down: a key with the reason that expires when the cooldown
ends. A provider's Retry-After longer than the cooldown lengthens it.

    note_failure(connection, "gpt-4o", "rate_limited", failures=3, window=60, cooldown=60)
    cooling(connection, ["gpt-4o", "echo"])  # -> {"gpt-4o": Cooldown(until=..., reason="rate_limited")}
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import redis

PREFIX = "switchboard:cooldown"


def _state_key(model_id: str) -> str:
    return f"{PREFIX}:{model_id}"


def _failures_key(model_id: str, kind: str) -> str:
    return f"{PREFIX}:{model_id}:failures:{kind}"


@dataclass(frozen=True)
class Cooldown:
    until: float  # Unix time
    reason: str  # the failure kind that started it
    detail: str = ""


def note_failure(
    connection: redis.Redis,
    model_id: str,
    kind: str,
    *,
    failures: int,
    window: float,
    cooldown: float,
    retry_after: float | None = None,
    detail: str = "",
) -> Cooldown | None:
    """Count one failure; the cooldown it starts (or None). ``failures`` 0 turns cooldowns off."""
    if failures <= 0:
        return None
    now = time.time()
    key = _failures_key(model_id, kind)
    with connection.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {f"{now}:{uuid.uuid4().hex[:8]}": now})
        pipe.zremrangebyscore(key, "-inf", now - window)
        pipe.zcard(key)
        pipe.expire(key, max(1, int(window) + 1))
        count = pipe.execute()[2]
    if count < failures:
        return None
    connection.delete(key)  # counted afresh once the cooldown ends
    return start(connection, model_id, kind, max(cooldown, retry_after or 0), detail)


def start(connection: redis.Redis, model_id: str, kind: str, seconds: float, detail: str = "") -> Cooldown | None:
    """Cool ``model_id`` down for ``seconds`` (a longer one already running is kept)."""
    if seconds <= 0:
        return None
    state = Cooldown(time.time() + seconds, kind, detail)
    current = cooling(connection, [model_id]).get(model_id)
    if current is not None and current.until >= state.until:
        return current
    connection.set(
        _state_key(model_id),
        json.dumps({"until": state.until, "reason": kind, "detail": detail}),
        px=max(1, int(seconds * 1000)),
    )
    return state


def cooling(connection: redis.Redis, model_ids: list[str]) -> dict[str, Cooldown]:
    """The models among ``model_ids`` that are cooling down now, with until when and why (one round trip)."""
    if not model_ids:
        return {}
    found = {}
    for model_id, raw in zip(model_ids, connection.mget([_state_key(m) for m in model_ids]), strict=True):
        if raw is None:
            continue
        state = json.loads(raw)
        found[model_id] = Cooldown(float(state["until"]), state["reason"], state.get("detail", ""))
    return found
