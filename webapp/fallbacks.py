"""Fallback chains: which model answers when a model fails before any text, and the trail it leaves.

An admin gives a model an ordered list of fallbacks and the kinds of failure that move on to the next
one (stored as the site setting ``model_fallbacks``). A fallback is tried only if the user may use it
now (``access.usable_model``, the one access rule: allowed, provider on and set up) and it is not cooling
down (``webapp.cooldowns``, shared by every worker through Redis); the worker's route also skips one whose
provider is at its cap (``scheduling.move_slot``: the reply's provider slot moves to the fallback's).

Every attempt of a generation is kept in its record (``Generation.attempt_log``): the model, when it was
asked, the seconds waited before asking, and the error kind if it failed. ``trail_sentence`` and
``header_value`` say it for people and for API clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from flask import current_app

from . import access, cooldowns, site_settings
from .llm import (
    AuthenticationFailed,
    ContentCutOff,
    ContextWindowExceeded,
    LLMError,
    Model,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    get_model,
)

SETTING = "model_fallbacks"  # {model id: {"fallbacks": [model ids], "on": [failure kinds]}}

# The kinds of failure (before any text) that may move a reply on to the next model, in the admin's words.
KINDS = {
    "rate_limited": "Rate limited (429)",
    "provider_down": "Provider down (5xx, timeout, connection refused or reset)",
    "context_window": "Context window exceeded",
    "key_refused": "Key refused (401, 403)",
}
DEFAULT_KINDS = ("rate_limited", "provider_down", "context_window")
# Kinds that say something about the model's health, so they count toward a cooldown.
COOLING_KINDS = ("rate_limited", "provider_down", "key_refused")
COOLING_DOWN = "cooling_down"  # an attempt skipped because its model was cooling down
AT_CAPACITY = "at_capacity"  # an attempt skipped because its provider ran as many replies as its cap allows
# How the trail says what happened to a model ("gpt-4o was rate limited").
WHAT_HAPPENED = {
    "rate_limited": "was rate limited",
    "provider_down": "was unavailable",
    "context_window": "could not take a conversation this long",
    "key_refused": "refused the API key",
    COOLING_DOWN: "was cooling down",
    AT_CAPACITY: "was at its provider's cap",
}
MAX_FALLBACKS = 5


@dataclass(frozen=True)
class Chain:
    fallbacks: tuple[str, ...] = ()
    moves_on: frozenset[str] = frozenset(DEFAULT_KINDS)


def failure_kind(error: BaseException) -> str | None:
    """The fallback kind of a provider failure that came before any text, or None (not one that moves on)."""
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, ContextWindowExceeded):
        return "context_window"
    if isinstance(error, (ProviderUnavailable, ProviderTimeout, ContentCutOff)):
        return "provider_down"  # a connection reset before the first text is the provider going down
    if isinstance(error, AuthenticationFailed):
        return "key_refused"
    return None


def _stored() -> dict:
    value = site_settings.snapshot().site.get(SETTING)
    return value if isinstance(value, dict) else {}


def _chain(entry) -> Chain:
    if not isinstance(entry, dict):
        return Chain()
    return Chain(
        tuple(str(m) for m in entry.get("fallbacks") or ()),
        frozenset(k for k in entry.get("on", DEFAULT_KINDS) if k in KINDS),
    )


def chain_of(model_id: str) -> Chain:
    return _chain(_stored().get(model_id))


def chains() -> dict[str, Chain]:
    return {model_id: _chain(entry) for model_id, entry in _stored().items()}


def parse_fallbacks(model_id: str, raw: str) -> list[str]:
    """The fallbacks an admin typed (one per line or comma separated) as model ids, in order; ValueError
    with a plain message for an unknown model, the model itself, a repeat or too many."""
    names = [n.strip() for n in raw.replace(",", "\n").splitlines() if n.strip()]
    ids: list[str] = []
    for name in names:
        try:
            found = get_model(name).model_id
        except KeyError as exc:
            raise ValueError(str(exc).strip("'\"")) from None
        if found == model_id:
            raise ValueError(f"{model_id} cannot be its own fallback.")
        if found in ids:
            raise ValueError(f"{found} is listed twice.")
        ids.append(found)
    if len(ids) > MAX_FALLBACKS:
        raise ValueError(f"At most {MAX_FALLBACKS} fallbacks per model.")
    return ids


def save_chain(model_id: str, fallbacks: list[str], kinds: list[str]) -> tuple[dict | None, dict | None]:
    """Store a model's chain (no fallbacks: none kept); (before, after) for the audit log. The caller commits."""
    stored = dict(site_settings.get_site(SETTING, {}) or {})
    before = stored.get(model_id)
    if fallbacks:
        stored[model_id] = {"fallbacks": list(fallbacks), "on": [k for k in KINDS if k in kinds]}
    else:
        stored.pop(model_id, None)
    site_settings.set_site(SETTING, stored)
    return before, stored.get(model_id)


# -- choosing the next model ---------------------------------------------------------------


def _cooldown_settings() -> dict:
    config = current_app.config
    return {
        "failures": int(config["COOLDOWN_FAILURES"]),
        "window": float(config["COOLDOWN_WINDOW_SECONDS"]),
        "cooldown": float(config["COOLDOWN_SECONDS"]),
    }


def note_failure(connection: redis.Redis, model_id: str, error: LLMError) -> cooldowns.Cooldown | None:
    """Count a failure toward the model's cooldown (kinds that say something of its health only)."""
    kind = failure_kind(error)
    if kind not in COOLING_KINDS:
        return None
    retry_after = getattr(error, "retry_after", None)
    return cooldowns.note_failure(
        connection, model_id, kind, retry_after=retry_after, detail=str(error)[:200], **_cooldown_settings()
    )


def honour_retry_after(connection: redis.Redis, model_id: str, error: LLMError) -> None:
    """A rate-limited model the reply moves on from is left alone for as long as its provider asked."""
    retry_after = getattr(error, "retry_after", None)
    if isinstance(error, RateLimited) and retry_after:
        cooldowns.start(connection, model_id, "rate_limited", float(retry_after), "the provider asked to wait")


def is_cooling(connection: redis.Redis, model_id: str) -> bool:
    return model_id in cooldowns.cooling(connection, [model_id])


def next_model(user, chain: Chain, tried: set[str], connection: redis.Redis) -> tuple[Model | None, list[str]]:
    """The first fallback in ``chain`` not yet tried that ``user`` may use now and that is not cooling down,
    and the fallbacks skipped because they were cooling down."""
    skipped = []
    candidates = [m for m in chain.fallbacks if m not in tried]
    cooling = cooldowns.cooling(connection, candidates)
    for model_id in candidates:
        try:
            model = access.usable_model(user, model_id)
        except (access.ModelNotAllowed, KeyError):
            continue  # not this user's, turned off, or not set up: never used, never shown
        if model.model_id in cooling:
            skipped.append(model.model_id)
            continue
        return model, skipped
    return None, skipped


def continuation_model(user, generation) -> Model | None:
    """The fallback a reply broken after some text may be continued with: the first in the chain of the model
    it asked first that the user may use now, other than the model that broke off."""
    attempt_log = generation.attempt_log or ()
    requested = attempt_log[0]["model"] if attempt_log else generation.model_id
    for candidate in chain_of(requested).fallbacks:
        if candidate == generation.model_id:
            continue
        try:
            return access.usable_model(user, candidate)
        except (access.ModelNotAllowed, KeyError):
            continue
    return None


def continuation_part(attempt_log: list | None) -> int:
    """The usage ledger part of a new continuation of a reply: one past the last its attempts name (a
    continuation logged before parts were kept counts as 1)."""
    return 1 + max((a.get("part", 1) for a in attempt_log or () if a.get("continues")), default=0)


# -- the trail -----------------------------------------------------------------------------


def attempt(model_id: str, waited: float = 0.0, error: str | None = None, kind: str | None = None) -> dict:
    return {
        "model": model_id,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "waited": round(waited, 3),
        "error": error,
        "kind": kind,
    }


def fell_back(attempt_log: list | None) -> bool:
    """Whether more than one model was involved (a fallback, or a model skipped while cooling down)."""
    return len({a.get("model") for a in attempt_log or ()}) > 1


def trail_sentence(attempt_log: list | None, last_model: str) -> str | None:
    """ "answered by gemini-1.5-pro after gpt-4o was rate limited" (or "fell back to ..." when the last model
    failed too), or None when one model did it all."""
    if not fell_back(attempt_log):
        return None
    log_ = list(attempt_log or ())
    for index, entry in enumerate(log_):
        if entry.get("continues") and index > 0:
            return f"continued by {entry['model']} after the answer from {log_[index - 1]['model']} broke off"
    failed: list[str] = []
    for entry in attempt_log or ():
        model_id = entry.get("model")
        if model_id == last_model or not entry.get("kind"):
            continue
        said = f"{model_id} {WHAT_HAPPENED.get(entry['kind'], 'failed')}"
        if said not in failed:
            failed.append(said)
    if not failed:
        return None
    last = (attempt_log or [{}])[-1]
    verb = "fell back to" if last.get("error") and not last.get("answered") else "answered by"
    return f"{verb} {last_model} after {_joined(failed)}"


def attempt_said(entry: dict) -> str:
    """One attempt in a few words, for the list behind the trail ("rate limited", "answered")."""
    if not entry.get("error"):
        return "answered"
    return {
        "rate_limited": "rate limited",
        "provider_down": "unavailable",
        "context_window": "conversation too long for its context window",
        "key_refused": "API key refused",
        COOLING_DOWN: "skipped: cooling down",
        AT_CAPACITY: "skipped: its provider was at its cap",
    }.get(entry.get("kind") or "", f"failed ({entry['error']})")


def _joined(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def header_value(attempt_log: list | None) -> str | None:
    """``X-Switchboard-Fallback``: each attempt as ``model=outcome`` in order ("gpt-4o=rate_limited,
    gemini-1.5-pro=answered"), or None when one model did it all."""
    if not fell_back(attempt_log):
        return None
    return ", ".join(f"{a.get('model')}={a.get('kind') or a.get('error') or 'answered'}" for a in attempt_log or ())
