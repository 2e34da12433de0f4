"""Domain functions behind the admin pages. Each change records an audit event; the view commits."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import redis
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from .. import audit, cooldowns, fallbacks, prices, site_settings
from ..accounts import active_admin_count, create_user, find_user, sessions
from ..extensions import db
from ..llm import config as llm_settings
from ..llm import get_aliases, get_models, get_providers, remove_alias, set_alias
from ..llm.registry import provider_configured
from ..models import User
from ..provider_checks import connection_test_result
from ..queue import get_queue, get_redis

log = logging.getLogger(__name__)


class ActionRefused(Exception):
    """An admin action that would break an invariant (e.g. removing the last admin)."""


# -- providers ---------------------------------------------------------------------------


def providers_overview() -> list[dict]:
    """Every registered provider with its stored settings (never the key itself)."""
    overview = []
    for name, info in get_providers().items():
        row = site_settings.provider_setting(name)
        env_key = bool(info["key_env_var"] and llm_settings.setting(info["key_env_var"]))
        overview.append(
            {
                "name": name,
                "label": info["label"],
                "enabled": row.enabled if row is not None else True,
                "base_url": row.base_url if row is not None else None,
                "base_url_setting": site_settings.BASE_URL_SETTINGS.get(name),
                "takes_key": bool(info["key_env_var"]),
                "needs_key": info["needs_key"],
                "key_hint": site_settings.key_hint(row),
                "env_key": env_key,
                "test": connection_test_result(name),
                "model_setting": site_settings.MODEL_SETTINGS.get(name),
            }
        )
    return overview


def provider_models_value(name: str) -> str:
    """What the provider's model field shows: litellm's models as JSON with secrets masked; inhouse's model name."""
    if name == "litellm":
        stored = site_settings.stored_llm_models(site_settings.get_site(site_settings.LLM_MODELS))
        return json.dumps(site_settings.masked_llm_models(stored), indent=2) if stored else ""
    if name == "inhouse":
        return site_settings.get_site(site_settings.INHOUSE_MODEL) or ""
    return ""


def update_provider_models(actor: User, name: str, raw: str) -> None:
    """Raises ValueError with a plain message when the litellm JSON is not usable."""
    if name == "litellm":
        stored = site_settings.stored_llm_models(site_settings.get_site(site_settings.LLM_MODELS))
        value = site_settings.parse_llm_models(raw, stored)
    else:
        value = raw
    before, after = site_settings.update_provider_models(name, value)
    if before != after:
        audit.record(actor, "provider.models", f"provider:{name}", before, after)


def known_provider(name: str) -> bool:
    return name in get_providers()


def update_provider(
    actor: User, name: str, *, enabled: bool, base_url: str | None, api_key: str | None, clear_key: bool
) -> None:
    before, after = site_settings.update_provider(
        name, enabled=enabled, base_url=base_url, api_key=api_key, clear_key=clear_key
    )
    audit.record(actor, "provider.update", f"provider:{name}", before, after)


# -- models ------------------------------------------------------------------------------


def models_overview() -> dict:
    disabled = set(site_settings.get_site(site_settings.DISABLED_MODELS, []))
    role_models = site_settings.get_site(site_settings.ROLE_MODELS, {}) or {}
    models = sorted(get_models(), key=lambda m: (m.provider, m.model_id))
    return {
        "models": models,
        "disabled": disabled,
        "role_models": {role: role_models.get(role) for role in site_settings.ROLES},
        "default_model": site_settings.get_site(site_settings.DEFAULT_MODEL),
        "aliases": dict(sorted(get_aliases().items())),
        "provider_enabled": {m.provider: llm_settings.provider_enabled(m.provider) for m in models},
        "configured": {m.provider: provider_configured(m.provider) for m in models},
    }


def default_model_choices() -> list[str]:
    """Models that can be the site's default: provider on and set up (the rest "needs setup")."""
    return [
        m.model_id
        for m in sorted(get_models(), key=lambda m: (m.provider, m.model_id))
        if llm_settings.provider_enabled(m.provider) and provider_configured(m.provider)
    ]


def model_prices() -> dict[str, tuple[float, float]]:
    return prices.admin_prices()


def set_model_price(actor: User, model_id: str, input_price: float | None, output_price: float | None) -> None:
    """An admin's price for a model, in dollars per million input and output tokens; both empty: none
    (LiteLLM's price map, or free for echo, in-house and Ollama). One empty side counts as 0."""
    stored = dict(site_settings.get_site(site_settings.MODEL_PRICES, {}) or {})
    before = stored.get(model_id)
    if input_price is None and output_price is None:
        stored.pop(model_id, None)
    else:
        stored[model_id] = [float(input_price or 0), float(output_price or 0)]
    site_settings.set_site(site_settings.MODEL_PRICES, stored)
    audit.record(actor, "model.price", f"model:{model_id}", {"price": before}, {"price": stored.get(model_id)})


def update_models(
    actor: User, *, enabled: list[str], default_model: str | None, role_models: dict[str, list[str] | None]
) -> None:
    known = [m.model_id for m in get_models()]
    before = {
        "disabled_models": site_settings.get_site(site_settings.DISABLED_MODELS, []),
        "default_model": site_settings.get_site(site_settings.DEFAULT_MODEL),
        "role_models": site_settings.get_site(site_settings.ROLE_MODELS, {}),
    }
    # Stored as the disabled list, so models that appear later (new provider models) start enabled.
    disabled = sorted(set(known) - set(enabled))
    after = {
        "disabled_models": disabled,
        "default_model": default_model or None,
        "role_models": {role: (sorted(ids) if ids is not None else None) for role, ids in role_models.items()},
    }
    site_settings.set_site(site_settings.DISABLED_MODELS, after["disabled_models"])
    site_settings.set_site(site_settings.DEFAULT_MODEL, after["default_model"])
    site_settings.set_site(site_settings.ROLE_MODELS, after["role_models"])
    audit.record(actor, "models.update", "models", before, after)


def update_capabilities(actor: User, *, images: list[str], pdf: list[str]) -> None:
    """What each model reads besides text, where the admin's ticks differ from the model's own word
    (LiteLLM's model information, else the provider): stored as overrides, audited."""
    before = site_settings.get_site(site_settings.MODEL_CAPABILITIES, {}) or {}
    after = {}
    for model in get_models():
        own = model.native_capabilities()
        ticked = (model.model_id in images, model.model_id in pdf)
        if ticked != own:
            after[model.model_id] = {"images": ticked[0], "pdf": ticked[1]}
    if after != before:
        site_settings.set_site(site_settings.MODEL_CAPABILITIES, after)
        audit.record(actor, "models.capabilities", "models", before, after)


def fallback_chains() -> dict[str, fallbacks.Chain]:
    return fallbacks.chains()


def set_fallbacks(actor: User, model_id: str, raw: str, kinds: list[str]) -> None:
    """A model's fallback chain from the admin's text; ValueError with a plain message when it is not usable."""
    before, after = fallbacks.save_chain(model_id, fallbacks.parse_fallbacks(model_id, raw), kinds)
    if before != after:
        audit.record(actor, "model.fallbacks", f"model:{model_id}", {"chain": before}, {"chain": after})


def model_states() -> dict:
    """Each model's health for the admin home: cooling down (until when, why) or healthy; None without Redis."""
    ids = [m.model_id for m in sorted(get_models(), key=lambda m: (m.provider, m.model_id))]
    try:
        cooling = cooldowns.cooling(get_redis(), ids)
    except redis.RedisError:
        return {"available": False, "models": []}
    return {
        "available": True,
        "models": [
            {
                "model_id": model_id,
                "cooldown": cooling.get(model_id),
                "until": datetime.fromtimestamp(cooling[model_id].until, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                if model_id in cooling
                else None,
                "reason": fallbacks.KINDS.get(cooling[model_id].reason, cooling[model_id].reason)
                if model_id in cooling
                else None,
            }
            for model_id in ids
        ],
    }


def add_alias(actor: User, alias: str, model_id: str) -> None:
    before = get_aliases().get(alias)
    set_alias(alias, model_id)  # UnknownModelError for unknown targets
    audit.record(actor, "alias.set", f"alias:{alias}", {"model": before}, {"model": get_aliases().get(alias)})


def delete_alias(actor: User, alias: str) -> None:
    before = get_aliases().get(alias)
    remove_alias(alias)  # KeyError when it is not a user alias
    audit.record(actor, "alias.remove", f"alias:{alias}", {"model": before}, None)


# -- users -------------------------------------------------------------------------------


def search_users(query: str = "", limit: int = 200) -> list[User]:
    statement = select(User).order_by(User.username)
    if query:
        statement = statement.where(func.lower(User.username).like(f"%{query.strip().lower()}%"))
    return list(db.session.scalars(statement.limit(limit)))


def user_state(user: User) -> dict:
    return {
        "username": user.username,
        "role": user.role,
        "disabled": user.is_disabled,
        "requests_per_minute": user.requests_per_minute,
        "tokens_per_day": user.tokens_per_day,
        "monthly_budget": user.monthly_budget,
    }


def add_user(actor: User, username: str, password: str, role: str) -> User:
    if find_user(username) is not None:
        raise ActionRefused("That username is taken.")
    user = create_user(username, password, role=role)
    audit.record(actor, "user.create", f"user:{user.username}", None, user_state(user))
    return user


def _refuse_if_last_admin(user: User, what: str) -> None:
    if user.is_admin and not user.is_disabled and active_admin_count() <= 1:
        raise ActionRefused(f"{user.username} is the last admin and cannot be {what}. Make another admin first.")


def set_role(actor: User, user: User, role: str) -> None:
    if role not in site_settings.ROLES:
        raise ActionRefused(f"Unknown role {role!r}.")
    if role == user.role:
        return
    if role != "admin":
        _refuse_if_last_admin(user, "demoted")
    before = user_state(user)
    user.role = role
    audit.record(actor, "user.role", f"user:{user.username}", before, user_state(user))


def set_disabled(actor: User, user: User, disabled: bool) -> None:
    if disabled == user.is_disabled:
        return
    if disabled:
        _refuse_if_last_admin(user, "disabled")
    before = user_state(user)
    user.is_disabled = disabled
    if not disabled:
        user.awaiting_approval = False  # enabling a waiting account approves it
    if disabled:
        sessions.revoke_all(user)  # ends every sign-in at once, browsers and API tokens
    audit.record(
        actor, "user.disable" if disabled else "user.enable", f"user:{user.username}", before, user_state(user)
    )


def reset_password(actor: User, user: User, password: str) -> None:
    user.set_password(password)
    sessions.revoke_all(user)  # sign-ins made with the old password end
    audit.record(actor, "user.password_reset", f"user:{user.username}", {"password": "old"}, {"password": "new"})


def set_limits(
    actor: User,
    user: User,
    requests_per_minute: int | None,
    tokens_per_day: int | None,
    monthly_budget: float | None = None,
) -> None:
    before = user_state(user)
    user.requests_per_minute = requests_per_minute
    user.tokens_per_day = tokens_per_day
    user.monthly_budget = monthly_budget
    audit.record(actor, "user.limits", f"user:{user.username}", before, user_state(user))


def default_limits() -> dict:
    return {
        "requests_per_minute": site_settings.get_site(site_settings.DEFAULT_REQUESTS_PER_MINUTE),
        "tokens_per_day": site_settings.get_site(site_settings.DEFAULT_TOKENS_PER_DAY),
        "monthly_budget": site_settings.get_site(site_settings.DEFAULT_MONTHLY_BUDGET),
    }


def set_default_limits(
    actor: User, requests_per_minute: int | None, tokens_per_day: int | None, monthly_budget: float | None = None
) -> None:
    """The limits of users who have none of their own nor from a group (None: the configuration's default)."""
    before = default_limits()
    site_settings.set_site(site_settings.DEFAULT_REQUESTS_PER_MINUTE, requests_per_minute)
    site_settings.set_site(site_settings.DEFAULT_TOKENS_PER_DAY, tokens_per_day)
    site_settings.set_site(site_settings.DEFAULT_MONTHLY_BUDGET, monthly_budget)
    audit.record(actor, "limits.defaults", "limits", before, default_limits())


# -- queue -------------------------------------------------------------------------------


def queue_summary() -> dict:
    """Queued, running, failed in the last hour, and live workers with their last heartbeat."""
    try:
        queue = get_queue()
        connection = queue.connection
        failed_ids = FailedJobRegistry(queue=queue).get_job_ids(0, 499, desc=True)
        cutoff = datetime.now(UTC) - timedelta(hours=1)
        failed_recent = 0
        for job in Job.fetch_many(failed_ids, connection=connection):
            ended = job.ended_at if job is not None else None
            if ended is not None:
                if ended.tzinfo is None:
                    ended = ended.replace(tzinfo=UTC)
                if ended >= cutoff:
                    failed_recent += 1
        workers = []
        for worker in Worker.all(queue=queue):
            heartbeat = getattr(worker, "last_heartbeat", None)
            workers.append(
                {
                    "name": worker.name,
                    "state": str(worker.get_state()),
                    "last_heartbeat": heartbeat.strftime("%Y-%m-%d %H:%M:%S UTC") if heartbeat else "never",
                    "current_job": worker.get_current_job_id(),
                }
            )
        return {
            "available": True,
            "name": queue.name,
            "queued": queue.count,
            "running": StartedJobRegistry(queue=queue).count,
            "failed_last_hour": failed_recent,
            "workers": workers,
        }
    except redis.RedisError:
        log.warning("queue summary: Redis unavailable")
        return {"available": False}
