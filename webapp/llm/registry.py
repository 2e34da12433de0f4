"""The model registry: providers register models, aliases and model-id resolvers.

Built-in providers live in :mod:`webapp.llm.providers`; third-party ones are
loaded from the ``switchboard.providers`` entry-point group (each entry point is
a module with ``register(registry)`` or that callable itself). The registry is
rebuilt when the settings change (``configure`` or the environment).
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from . import aliases as alias_file
from . import config
from .errors import UnknownModelError
from .models import Model

log = logging.getLogger(__name__)

BUILTIN_PROVIDERS = ("echo", "openai", "gemini", "inhouse", "litellm")
ENTRY_POINT_GROUP = "switchboard.providers"


@dataclass
class ProviderInfo:
    name: str
    label: str
    key_env_var: str | None = None
    needs_key: bool = False
    list_models: Callable[[], list[str]] | None = None
    is_configured: Callable[[], bool] | None = None
    model_ids: list[str] = field(default_factory=list)

    def configured(self) -> bool:
        return True if self.is_configured is None else bool(self.is_configured())

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "key_env_var": self.key_env_var,
            "needs_key": self.needs_key,
            "configured": self.configured(),
            "models": list(self.model_ids),
            "enabled": config.provider_enabled(self.name),
        }


class Registry:
    def __init__(self):
        self.models: dict[str, type[Model]] = {}
        self.aliases: dict[str, str] = {}
        self.providers: dict[str, ProviderInfo] = {}
        self.resolvers: list[Callable[[str], type[Model] | None]] = []

    def add_provider(self, name: str, label: str, **info) -> ProviderInfo:
        provider = ProviderInfo(name=name, label=label, **info)
        self.providers[name] = provider
        return provider

    def add_model(self, model_cls: type[Model], aliases=(), replace: bool = False) -> None:
        model_id = model_cls.model_id
        if not model_id:
            raise ValueError(f"{model_cls!r} has no model_id")
        if model_id in self.models and not replace:
            return
        previous = self.models.get(model_id)
        if previous is not None and previous.provider in self.providers:
            ids = self.providers[previous.provider].model_ids
            if model_id in ids:
                ids.remove(model_id)
        self.models[model_id] = model_cls
        provider = self.providers.get(model_cls.provider)
        if provider is not None:
            provider.model_ids.append(model_id)
        for alias in (*model_cls.aliases, *aliases):
            if alias != model_id:
                self.aliases.setdefault(alias, model_id)

    def add_resolver(self, resolver: Callable[[str], type[Model] | None]) -> None:
        """``resolver(name)`` returns a model class for ids it recognises (e.g. a
        ``"inhouse/"`` prefix) that were not registered up front."""
        self.resolvers.append(resolver)

    def lookup(self, name: str) -> type[Model] | None:
        if name in self.models:
            return self.models[name]
        for resolver in self.resolvers:
            cls = resolver(name)
            if cls is not None:
                return cls
        return None


_cache_lock = threading.Lock()
_cache: tuple[object, Registry] | None = None


def _load_plugins(registry: Registry) -> None:
    for name in BUILTIN_PROVIDERS:
        importlib.import_module(f"webapp.llm.providers.{name}").register(registry)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            register = getattr(loaded, "register", loaded)
            register(registry)
        except Exception:  # a broken plugin must not take the app down
            log.exception("Could not load LLM provider plugin %s", entry_point.name)


def _model_settings_fingerprint() -> str:
    """Settings that decide which models exist and may change at run time (an admin's overrides)."""
    return json.dumps([config.setting("LLM_MODELS"), config.setting("INHOUSE_MODEL")], sort_keys=True, default=str)


def get_registry() -> Registry:
    global _cache
    generation = (config.get_settings()[0], _model_settings_fingerprint())
    with _cache_lock:
        if _cache is not None and _cache[0] == generation:
            return _cache[1]
    # Built outside the lock: a provider's register() may read admin settings (a database query), and a lock
    # held while waiting for a pooled connection deadlocks with callers that hold one and wait for the lock.
    registry = Registry()
    _load_plugins(registry)
    with _cache_lock:
        _cache = (generation, registry)
    return registry


def _resolve(name: str) -> type[Model] | None:
    registry = get_registry()
    cls = registry.models.get(name)
    if cls is not None:
        return cls
    user_aliases = alias_file.read_aliases()
    target = user_aliases.get(name) or registry.aliases.get(name)
    if target is not None:
        cls = registry.lookup(target)
        if cls is not None:
            return cls
    return registry.lookup(name)


# How alike (difflib's ratio) a known name must be to be suggested: "gpt4o" finds "gpt-4o", "nope" finds nothing.
CLOSE_NAME_CUTOFF = 0.75


def _unknown(name: str) -> UnknownModelError:
    registry = get_registry()
    known = list(registry.models) + list(registry.aliases) + list(alias_file.read_aliases())
    close = difflib.get_close_matches(name, known, n=3, cutoff=CLOSE_NAME_CUTOFF)
    hint = (
        f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; run `flask llm models` to list models"
    )
    return UnknownModelError(f"Unknown model: {name!r}{hint}")


def get_model(name: str) -> Model:
    """A fresh :class:`Model` for a model id or alias."""
    cls = _resolve(name) if isinstance(name, str) and name else None
    if cls is None:
        raise _unknown(str(name))
    return cls()


def get_models() -> list[Model]:
    return [cls() for cls in get_registry().models.values()]


def get_default_model() -> Model:
    name = config.setting("DEFAULT_LLM_MODEL") or "echo"
    try:
        return get_model(name)
    except UnknownModelError:
        log.warning("DEFAULT_LLM_MODEL %r is not a known model; using echo", name)
        return get_model("echo")


def get_aliases() -> dict[str, str]:
    """All aliases, alias -> model id: provider aliases overridden by the user's."""
    merged = dict(get_registry().aliases)
    merged.update(alias_file.read_aliases())
    return merged


def set_alias(alias: str, model_id_or_alias: str) -> None:
    """Store ``alias`` for a model id or another alias (resolved to its model id)."""
    if not alias or not isinstance(alias, str):
        raise ValueError("alias must be a non-empty string")
    model = get_model(model_id_or_alias)  # UnknownModelError for unknown targets

    def change(aliases):
        aliases[alias] = model.model_id

    alias_file.update_aliases(change)


def remove_alias(alias: str) -> None:
    """Remove a user alias; ``KeyError`` if there is none."""

    def change(aliases):
        if alias not in aliases:
            raise KeyError(f"No alias called {alias!r}")
        del aliases[alias]

    alias_file.update_aliases(change)


def provider_configured(provider_name: str) -> bool:
    """Whether a provider has what its models need to run (an API key, a base URL); unknown: False."""
    provider = get_registry().providers.get(provider_name)
    return provider is not None and provider.configured()


def provider_label(provider_name: str) -> str:
    provider = get_registry().providers.get(provider_name)
    return provider.label if provider is not None else provider_name


def get_providers() -> dict[str, dict]:
    return {name: info.as_dict() for name, info in get_registry().providers.items()}


def list_provider_models(provider_name: str) -> list[str]:
    """Model ids a provider offers, asking its API when it is configured."""
    provider = get_registry().providers.get(provider_name)
    if provider is None:
        known = ", ".join(sorted(get_registry().providers))
        raise UnknownModelError(f"Unknown provider: {provider_name!r} (known: {known})")
    if provider.list_models is None:
        return list(provider.model_ids)
    return provider.list_models()
