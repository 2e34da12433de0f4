"""Where :mod:`webapp.llm` gets its settings and API keys.

The LLM layer stands alone: it imports nothing else of the app (no Flask either), as
simonw/llm needs no web app. The Flask app fills it with :func:`configure` from its own
configuration (``webapp.config``: environment > .env > instance/config.py > defaults).
A plain script need not call anything: settings then come from the environment
(``OPENAI_API_KEY``, ``LLM_MODELS`` as JSON, ...) and the defaults below, re-read
whenever those variables change.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_UNSET: Any = object()


@dataclass(frozen=True)
class Setting:
    """One setting: its name (also its environment variable), kind, default and a line on what it is for.

    ``kind`` is how a string from the environment is read: str, int, float, bool, json or secret (a str
    never shown). ``shown_default`` describes a default that is computed rather than fixed.
    """

    name: str
    kind: str
    default: Any
    help: str
    shown_default: str = ""


# The LLM layer's own settings (it stands alone, so they are declared here; webapp.config adds the app's).
LLM_SETTINGS = (
    Setting("DEFAULT_LLM_MODEL", "str", "echo", "Model for new conversations (an id or alias)."),
    Setting("OPENAI_API_KEY", "secret", None, "The OpenAI provider's key."),
    Setting("OPENAI_MODEL", "str", "gpt-4o", "OpenAI's default model."),
    Setting("OPENAI_BASE_URL", "str", None, "OpenAI endpoint override (a proxy or a compatible server)."),
    Setting("GEMINI_API_KEY", "secret", None, "The Google Gemini provider's key."),
    Setting("GEMINI_API_BASE", "str", None, "Gemini endpoint override (proxies)."),
    Setting(
        "INHOUSE_API_BASE", "str", None, "The in-house OpenAI-compatible server (it may be down; Switchboard says so)."
    ),
    Setting("INHOUSE_API_KEY", "secret", None, "Key for the in-house server, if it wants one."),
    Setting("INHOUSE_MODEL", "str", None, "The in-house model's name (else the first model the server lists)."),
    Setting(
        "LLM_MODELS",
        "json",
        {},
        'LiteLLM models: JSON of model name to litellm arguments, e.g. `{"ollama_chat/llama3": '
        '{"api_base": "http://localhost:11434"}}`.',
    ),
    Setting("ECHO_DELAY", "float", 0.05, "Seconds between the offline echo model's chunks."),
    Setting("LLM_REQUEST_TIMEOUT", "float", 60.0, "Seconds for a provider call, and between stream chunks."),
    Setting("LLM_CONNECT_TIMEOUT", "float", 2.0, "Seconds to connect to a provider."),
    Setting("ATTACHMENT_MAX_FILE_MB", "float", 10, "Largest attached image or PDF, in MB (chat, API, URLs)."),
    Setting("ATTACHMENT_FETCH_TIMEOUT", "float", 10.0, "Seconds to connect to, and between bytes of, an image URL."),
    Setting(
        "ATTACHMENT_ALLOW_PRIVATE_URLS",
        "bool",
        False,
        "Fetch image URLs on private, loopback or link-local addresses (off: only public addresses; tests turn it on).",
    ),
)
DEFAULTS: dict[str, Any] = {s.name: s.default for s in LLM_SETTINGS if s.default is not None}
# Read from the environment too, even when the app's config does not carry them.
EXTRA_ENV_KEYS = (
    "LLM_REQUEST_TIMEOUT",
    "LLM_CONNECT_TIMEOUT",
    "INHOUSE_MODEL",
    "ATTACHMENT_MAX_FILE_MB",
    "ATTACHMENT_FETCH_TIMEOUT",
    "ATTACHMENT_ALLOW_PRIVATE_URLS",
)
# The environment variables the LLM layer reads (the app's configuration reads the same ones).
LLM_ENV_KEYS = tuple(s.name for s in LLM_SETTINGS)
_WATCHED_ENV = ("SWITCHBOARD_INSTANCE_PATH", *LLM_ENV_KEYS)

_lock = threading.RLock()
_configured: dict | None = None
_key_resolver: Callable[[str], str | None] | None = None
_overrides: Callable[[str], Any] | None = None  # e.g. settings an admin stored in the database
_generation = 0  # bumps whenever settings change, so caches built from them expire
_env_cache: tuple[tuple, dict] | None = None


def configure(
    settings: dict | None = _UNSET,
    *,
    key_resolver: Callable[[str], str | None] | None = _UNSET,
    overrides: Callable[[str], Any] | None = _UNSET,
) -> None:
    """Set the settings dict, the key resolver and/or the settings overrides.

    ``configure(app.config)`` uses that mapping; ``configure(None)`` goes back to
    reading the environment. ``configure(key_resolver=fn)`` installs
    ``fn(provider_name) -> key or None`` (``key_resolver=None`` removes it).
    ``configure(overrides=fn)`` installs ``fn(setting_name) -> value or None``,
    consulted before the settings (for values that change at run time, such as
    base URLs or ``LLM_DISABLED_PROVIDERS``; it must be cheap: it is called often).
    """
    global _configured, _key_resolver, _overrides, _generation
    with _lock:
        if settings is not _UNSET:
            _configured = dict(settings) if settings is not None else None
            _generation += 1
        if key_resolver is not _UNSET:
            _key_resolver = key_resolver
        if overrides is not _UNSET:
            _overrides = overrides


def from_environment() -> dict:
    """The settings a plain script gets: the environment's variables (``LLM_MODELS`` decoded from JSON)."""
    settings = {name: os.environ[name] for name in _WATCHED_ENV if name in os.environ}
    if "LLM_MODELS" in settings:
        try:
            settings["LLM_MODELS"] = json.loads(settings["LLM_MODELS"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"LLM_MODELS must be valid JSON: {exc.msg}") from None
    return settings


def _from_environment() -> dict:
    global _env_cache
    fingerprint = tuple(os.environ.get(name) for name in _WATCHED_ENV)
    cached = _env_cache
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    settings = from_environment()
    _env_cache = (fingerprint, settings)
    return settings


def files_dir() -> Path:
    """Where the LLM layer keeps its files (``aliases.json``): the app's instance folder.

    The ``INSTANCE_PATH`` setting (the app passes its own), else ``SWITCHBOARD_INSTANCE_PATH``,
    else ``instance/`` beside the code, as the app's default.
    """
    configured = setting("INSTANCE_PATH") or os.environ.get("SWITCHBOARD_INSTANCE_PATH")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "instance"


def get_settings() -> tuple[int, dict]:
    """Return ``(generation, settings)``; generation changes when settings do."""
    with _lock:
        if _configured is not None:
            return (_generation, 0), _configured
        settings = _from_environment()
        return (_generation, id(settings)), settings


def setting(name: str, default: Any = None) -> Any:
    overrides = _overrides
    if overrides is not None:
        value = overrides(name)
        if value not in (None, ""):
            return value
    _, settings = get_settings()
    value = settings.get(name)
    if value in (None, "") and name in EXTRA_ENV_KEYS:
        value = os.environ.get(name)
    if value in (None, ""):
        value = DEFAULTS.get(name, default)
    return value


def provider_enabled(provider: str) -> bool:
    """False when the ``LLM_DISABLED_PROVIDERS`` setting (a list or comma-separated names) names ``provider``."""
    disabled = setting("LLM_DISABLED_PROVIDERS") or ()
    if isinstance(disabled, str):
        disabled = [name.strip() for name in disabled.split(",")]
    return provider not in disabled


def float_setting(name: str) -> float:
    value = setting(name)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float(DEFAULTS[name])


def request_timeout() -> float:
    return float_setting("LLM_REQUEST_TIMEOUT")


def connect_timeout() -> float:
    return min(float_setting("LLM_CONNECT_TIMEOUT"), request_timeout())


def resolve_key(provider: str, env_var: str | None) -> str | None:
    """Key lookup after an explicit ``model.key``: key_resolver, then config/env."""
    resolver = _key_resolver
    if resolver is not None:
        key = resolver(provider)
        if key:
            return key
    if env_var:
        return setting(env_var) or None
    return None
