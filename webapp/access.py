"""Which models a user may use.

A model is usable when its provider is on, an admin has not disabled the model,
and the allow-list of the user's role (``None`` = every model) or of any of the
user's groups (``webapp.groups``) names it. The chat
pages, the JSON API and the worker all ask here, so hiding a model in a picker is
never the only protection:

    check_model_allowed(user, "gpt-4o")   # -> "gpt-4o", or raises ModelNotAllowed
    allowed_models(user)                  # -> [Model, ...] for pickers

A model the policy allows can still be unusable because its provider is not set up
(no API key or base URL): such models are left out of pickers (admins see them as
"needs setup") and refused before anything is saved or queued (``check_model_usable``).
"""

from __future__ import annotations

from flask import g, has_app_context, has_request_context

from . import groups, site_settings
from .llm import LLMError, Model, get_model, get_models
from .llm import config as llm_settings
from .llm.registry import provider_configured, provider_label


class ModelNotAllowed(LLMError):
    """The user may not use this model; ``str(exc)`` is a plain sentence for them.

    An ``LLMError`` (not retryable), so code that reports LLM failures reports this one too.
    """

    code = "model_not_allowed"
    retryable = False


class ModelNeedsSetup(ModelNotAllowed):
    """The model's provider is not configured (no key or base URL): not a temporary failure."""

    code = "model_not_configured"


def _policy(user=None) -> tuple[set[str], dict, set[str]]:
    """(disabled models, role allow-lists, the models ``user``'s groups allow): read once per check."""
    if not has_app_context():
        return set(), {}, set()
    site = site_settings.snapshot().site
    disabled = set(site.get(site_settings.DISABLED_MODELS) or ())
    role_models = site.get(site_settings.ROLE_MODELS) or {}
    group_models = set().union(*(g.models for g in groups.user_groups(user))) if user is not None else set()
    return disabled, role_models if isinstance(role_models, dict) else {}, group_models


def refusal(user, model: Model, policy: tuple[set[str], dict, set[str]] | None = None) -> str | None:
    """Why ``user`` may not use ``model``, or None when they may."""
    disabled, role_models, group_models = policy or _policy(user)
    if not llm_settings.provider_enabled(model.provider):
        return f"The model {model.model_id} is not available: its provider ({model.provider}) is turned off."
    if model.model_id in disabled:
        return f"The model {model.model_id} has been disabled by an administrator."
    role = getattr(user, "role", None) or "user"
    allowed = role_models.get(role)
    if allowed is not None and model.model_id not in allowed and model.model_id not in group_models:
        return f"The model {model.model_id} is not available to your account."
    return None


def check_model_allowed(user, model_id: str) -> str:
    """The model's canonical id if ``user`` may use it; else ``ModelNotAllowed``.

    An unknown id raises ``webapp.llm.UnknownModelError`` (a ``KeyError``).
    """
    model = get_model(model_id)
    reason = refusal(user, model)
    if reason is not None:
        raise ModelNotAllowed(reason)
    return model.model_id


def setup_problem(model: Model, for_admin: bool = False) -> str | None:
    """Why ``model`` cannot run until its provider is set up, or None. Admins are told what to set."""
    if provider_configured(model.provider):
        return None
    label = provider_label(model.provider)
    if for_admin:
        needs = f"an API key ({model.key_env_var})" if model.needs_key else "its base URL or models"
        return f"The model {model.model_id} needs setup: {label} needs {needs} on the Providers page."
    return (
        f"The model {model.model_id} is not set up on this server yet. "
        "Pick another model, or ask an administrator to set it up."
    )


def check_model_usable(user, model_id: str) -> str:
    """``check_model_allowed``, and the provider is set up (``ModelNeedsSetup`` otherwise)."""
    return usable_model(user, model_id).model_id


def usable_model(user, model_id: str) -> Model:
    """The model, if ``user`` may use it now: allowed, and its provider set up (else ``ModelNotAllowed``,
    ``ModelNeedsSetup``, or ``KeyError`` for an unknown id). Decided once per request: asking again in the
    same request (the page, the new chat, its reply) answers from the first decision."""
    decided = g.setdefault("usable_models", {}) if has_request_context() else {}
    key = (getattr(user, "id", None), getattr(user, "role", None), model_id)
    if key not in decided:
        try:
            model = get_model(model_id)
            reason = refusal(user, model)
            if reason is not None:
                raise ModelNotAllowed(reason)
            problem = setup_problem(model, for_admin=getattr(user, "is_admin", False))
            if problem is not None:
                raise ModelNeedsSetup(problem)
            decided[key] = model
        except (ModelNotAllowed, KeyError) as exc:
            decided[key] = exc
    result = decided[key]
    if isinstance(result, Exception):
        raise result
    return result


def needs_setup_models(user) -> list[Model]:
    """Models ``user`` may use once their provider is set up (shown to admins as "needs setup")."""
    policy = _policy(user)
    return [
        model
        for model in get_models()
        if refusal(user, model, policy) is None and not provider_configured(model.provider)
    ]


def allowed_models(user) -> list[Model]:
    """The registered models ``user`` may use now (for pickers and the API's model list): allowed and set up."""
    policy = _policy(user)
    return [
        model for model in get_models() if refusal(user, model, policy) is None and provider_configured(model.provider)
    ]


def model_notice(user, model_id: str) -> str | None:
    """A plain sentence for a conversation whose model the user can no longer use, or None."""
    try:
        check_model_usable(user, model_id)
    except ModelNotAllowed as exc:
        return f"{exc} Choose another model in this conversation's settings, or start a new chat."
    except KeyError:
        return f"The model {model_id} no longer exists. Choose another model in this conversation's settings, or start a new chat."
    return None


def usable_model_id(user, model_id: str) -> str:
    """``model_id`` if ``user`` may use it now, else the first model they may use (``ModelNotAllowed`` if none)."""
    try:
        return check_model_usable(user, model_id)
    except (ModelNotAllowed, KeyError):
        pass
    allowed = allowed_models(user)
    if not allowed:
        raise ModelNotAllowed("No model is available to your account right now; ask an administrator.")
    return allowed[0].model_id
