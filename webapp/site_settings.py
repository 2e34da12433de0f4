"""Settings an admin keeps in the database: provider keys, base URLs, on/off, models and role allow-lists.

API keys are encrypted at rest with Fernet; the Fernet key is derived from the
app's SECRET_KEY with HKDF-SHA256, so the database alone never reveals a key.
Keys are never rendered back: pages get :func:`key_hint` ("ends in …abcd").

:func:`init_app` wires the stored values into :mod:`webapp.llm` through
``configure(key_resolver=..., overrides=...)``. Both read a per-app snapshot
that lives for :data:`CACHE_SECONDS` (and is dropped at once in the process
that saves a change), so a worker sees an admin's change within seconds.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from . import llm
from .extensions import db
from .models import ProviderSetting, SiteSetting

log = logging.getLogger(__name__)

CACHE_SECONDS = 3.0
ROLES = ("user", "admin")
# Provider -> the llm setting its base URL overrides.
BASE_URL_SETTINGS = {"openai": "OPENAI_BASE_URL", "gemini": "GEMINI_API_BASE", "inhouse": "INHOUSE_API_BASE"}
# Site setting keys.
DEFAULT_MODEL = "default_model"
DISABLED_MODELS = "disabled_models"
ROLE_MODELS = "role_models"  # {"user": [model ids] | None (all), "admin": ...}
DEFAULT_REQUESTS_PER_MINUTE = "default_requests_per_minute"  # per-user limits when a user has none (webapp.limits)
DEFAULT_TOKENS_PER_DAY = "default_tokens_per_day"
DEFAULT_MONTHLY_BUDGET = "default_monthly_budget"  # dollars per calendar month (UTC), 0 = unlimited
MODEL_PRICES = "model_prices"  # {model id: [USD per million input tokens, per million output tokens]}
LLM_MODELS = "llm_models_encrypted"  # the litellm models dict, Fernet-encrypted JSON (it may hold api keys)
INHOUSE_MODEL = "inhouse_model"
MODEL_CAPABILITIES = "model_capabilities"  # {model id: {"images": bool, "pdf": bool}}: admin overrides
# Provider -> the llm setting an admin may store for it besides key and base URL.
MODEL_SETTINGS = {"litellm": "LLM_MODELS", "inhouse": "INHOUSE_MODEL"}
SECRET_MASK = "********"
_SECRET_FIELD_HINTS = ("key", "token", "secret", "password")

_EXTENSION = "switchboard_admin_settings"
_HKDF_INFO = b"switchboard provider api keys v1"


# -- encryption ------------------------------------------------------------------


def _fernet(secret_key: str | None = None) -> Fernet:
    secret = (secret_key or current_app.config["SECRET_KEY"]).encode()
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret)
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_key(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_key(token: str) -> str | None:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        # SECRET_KEY changed since the key was stored: treat it as unset (the page says so).
        log.warning("a stored provider API key cannot be decrypted (SECRET_KEY changed?)")
        return None


def key_hint(setting: ProviderSetting | None) -> str | None:
    if setting is None or not setting.api_key_encrypted:
        return None
    return f"set, ends in …{setting.api_key_last4}" if setting.api_key_last4 else "set"


# -- the snapshot the LLM layer reads ---------------------------------------------------


@dataclass
class Snapshot:
    providers: dict[str, object] = field(default_factory=dict)  # provider -> row of ProviderSetting columns
    site: dict[str, object] = field(default_factory=dict)
    loaded_at: float = 0.0


_lock = threading.Lock()


def _load() -> Snapshot:
    # Columns, not entities: plain rows that never touch the session's identity map.
    with db.session.no_autoflush:
        providers = {
            row.provider: row
            for row in db.session.execute(
                select(
                    ProviderSetting.provider,
                    ProviderSetting.enabled,
                    ProviderSetting.base_url,
                    ProviderSetting.api_key_encrypted,
                    ProviderSetting.api_key_last4,
                )
            )
        }
        site = {row.key: row.value for row in db.session.execute(select(SiteSetting.key, SiteSetting.value))}
    return Snapshot(providers, site, time.monotonic())


def snapshot() -> Snapshot:
    """The stored settings, at most CACHE_SECONDS old. Needs an app context."""
    ext = current_app.extensions
    cached: Snapshot | None = ext.get(_EXTENSION)
    if cached is not None and time.monotonic() - cached.loaded_at < CACHE_SECONDS:
        return cached
    # Never wait for another request's load: a request waiting here may hold the pooled connection that
    # load waits for (with every connection so held, each waits on the other until the pool times out).
    # While one request reloads, the others keep the snapshot they had, or load their own if there is none.
    if not _lock.acquire(blocking=False):
        return cached if cached is not None else _load_or_nothing()
    try:
        fresh = ext[_EXTENSION] = _load_or_nothing()
        return fresh
    finally:
        _lock.release()


def _load_or_nothing() -> Snapshot:
    try:
        return _load()
    except SQLAlchemyError:
        # No table yet (before `db upgrade`) or the database is down: fall back to config.
        db.session.rollback()
        log.warning("admin settings unavailable; using configuration only")
        return Snapshot(loaded_at=time.monotonic())


def invalidate() -> None:
    current_app.extensions.pop(_EXTENSION, None)


def stored_key(provider: str) -> str | None:
    """The decrypted API key an admin stored for ``provider``, or None."""
    if not has_app_context():
        return None
    setting = snapshot().providers.get(provider)
    if setting is None or not setting.api_key_encrypted:
        return None
    return decrypt_key(setting.api_key_encrypted)


def llm_override(name: str):
    """Settings for :mod:`webapp.llm` that an admin stored: base URLs, disabled providers, default model."""
    if not has_app_context():
        return None
    snap = snapshot()
    if name == "LLM_DISABLED_PROVIDERS":
        disabled = [p.provider for p in snap.providers.values() if not p.enabled]
        return disabled or None
    if name == "DEFAULT_LLM_MODEL":
        return snap.site.get(DEFAULT_MODEL) or None
    if name == "LLM_MODELS":
        return stored_llm_models(snap.site.get(LLM_MODELS))
    if name == "INHOUSE_MODEL":
        return snap.site.get(INHOUSE_MODEL) or None
    if name == "MODEL_CAPABILITIES":
        return snap.site.get(MODEL_CAPABILITIES) or None
    for provider, setting_name in BASE_URL_SETTINGS.items():
        if name == setting_name:
            setting = snap.providers.get(provider)
            return setting.base_url if setting is not None and setting.base_url else None
    return None


def stored_llm_models(encrypted: str | None) -> dict | None:
    """The litellm models dict an admin stored (decrypted), or None."""
    if not encrypted:
        return None
    plaintext = decrypt_key(encrypted)
    if plaintext is None:
        return None
    try:
        models = json.loads(plaintext)
    except ValueError:
        return None
    return models if isinstance(models, dict) and models else None


def _is_secret_field(name: str) -> bool:
    return any(hint in name.lower() for hint in _SECRET_FIELD_HINTS)


def masked_llm_models(models: dict | None) -> dict:
    """The models dict with every secret-looking value replaced by SECRET_MASK: safe to render."""
    return {
        model: {
            field: (SECRET_MASK if _is_secret_field(field) and value else value)
            for field, value in (options or {}).items()
        }
        for model, options in (models or {}).items()
    }


def parse_llm_models(text: str, stored: dict | None) -> dict:
    """Validate the admin's JSON; a masked secret keeps the stored value. Raises ValueError with a plain message."""
    text = (text or "").strip()
    if not text:
        return {}
    try:
        models = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"Not valid JSON: {exc}") from None
    if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
        raise ValueError(
            "Give an object of model name to litellm arguments, e.g. "
            '{"ollama_chat/llama3": {"api_base": "http://localhost:11434"}}.'
        )
    stored = stored or {}
    for model, options in models.items():
        for name, value in list(options.items()):
            if value == SECRET_MASK:
                previous = (stored.get(model) or {}).get(name)
                if previous is None:
                    raise ValueError(f"{model}: enter the value of {name} (nothing is stored for it yet).")
                options[name] = previous
    return models


def init_app(app: Flask) -> None:
    llm.configure(key_resolver=stored_key, overrides=llm_override)


# -- reading and changing (views call these, then commit) ---------------------------------


def provider_setting(provider: str) -> ProviderSetting | None:
    return db.session.get(ProviderSetting, provider)


def _provider_row(provider: str) -> ProviderSetting:
    row = db.session.get(ProviderSetting, provider)
    if row is None:
        row = ProviderSetting(provider=provider, enabled=True)
        db.session.add(row)
    return row


def provider_state(row: ProviderSetting | None) -> dict:
    """What the audit log records: never the key, only whether one is set and its last four characters."""
    if row is None:
        return {"enabled": True, "base_url": None, "api_key": None}
    return {
        "enabled": row.enabled,
        "base_url": row.base_url,
        "api_key": f"…{row.api_key_last4}" if row.api_key_encrypted else None,
    }


def update_provider(
    provider: str, *, enabled: bool, base_url: str | None, api_key: str | None = None, clear_key: bool = False
) -> tuple[dict, dict]:
    """Change a provider's settings; ``api_key`` None/"" keeps the stored key. Returns (before, after)."""
    row = _provider_row(provider)
    before = provider_state(row if row.updated_at is not None else None)
    row.enabled = enabled
    row.base_url = (base_url or "").strip() or None
    if clear_key:
        row.api_key_encrypted = None
        row.api_key_last4 = None
    elif api_key:
        api_key = api_key.strip()
        row.api_key_encrypted = encrypt_key(api_key)
        row.api_key_last4 = api_key[-4:] if len(api_key) >= 12 else None
    db.session.flush()
    invalidate()
    return before, provider_state(row)


def update_provider_models(provider: str, value) -> tuple[dict, dict]:
    """Store a provider's model setting (litellm: the models dict, encrypted; inhouse: a model name)."""
    if provider == "litellm":
        before = masked_llm_models(stored_llm_models(get_site(LLM_MODELS)))
        set_site(LLM_MODELS, encrypt_key(json.dumps(value)) if value else None)
        return {"models": before}, {"models": masked_llm_models(value)}
    before = get_site(INHOUSE_MODEL)
    set_site(INHOUSE_MODEL, (value or "").strip() or None)
    return {"model": before}, {"model": get_site(INHOUSE_MODEL)}


def get_site(key: str, default=None):
    row = db.session.get(SiteSetting, key)
    return default if row is None or row.value is None else row.value


def set_site(key: str, value) -> None:
    row = db.session.get(SiteSetting, key)
    if row is None:
        db.session.add(SiteSetting(key=key, value=value))
    else:
        row.value = value
    db.session.flush()
    invalidate()
