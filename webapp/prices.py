"""Prices of models: an admin's price per million input and output tokens, else free for echo, the in-house model and
Ollama, else LiteLLM's price map (shipped with litellm, read without importing it)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from pathlib import Path

from flask import has_app_context

from . import site_settings
from .llm import get_model

log = logging.getLogger(__name__)

_prices: dict | None = None
_prices_lock = threading.Lock()

PRICE_FILE = "model_prices_and_context_window_backup.json"


# Cost nothing unless an admin sets a price (the Models page): no provider bills them.
FREE_PROVIDERS = {"echo", "inhouse"}


FREE_PREFIXES = ("ollama/", "ollama_chat/")


def _load_prices() -> dict:
    spec = importlib.util.find_spec("litellm")
    locations = list(spec.submodule_search_locations or ()) if spec else []
    for location in locations:
        path = Path(location) / PRICE_FILE
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from .llm.providers.litellm import import_litellm

    return dict(import_litellm().model_cost)


def price_map() -> dict:
    global _prices
    with _prices_lock:
        if _prices is None:
            try:
                _prices = _load_prices()
            except Exception:  # no litellm: costs are simply unknown
                log.warning("litellm's model price map is unavailable; costs will not be estimated")
                _prices = {}
        return _prices


def admin_prices() -> dict[str, tuple[float, float]]:
    """Prices an admin set on the Models page: model id -> (input, output) USD per million tokens."""
    stored = site_settings.snapshot().site.get(site_settings.MODEL_PRICES) if has_app_context() else None
    prices = {}
    for model_id, pair in (stored or {}).items() if isinstance(stored, dict) else ():
        try:
            prices[model_id] = (float(pair[0]), float(pair[1]))
        except (TypeError, ValueError, IndexError):
            continue
    return prices


def unit_prices(model_id: str, provider: str) -> tuple[float, float] | None:
    """(input, output) USD per token: an admin's price, else nothing for free providers (echo,
    in-house, Ollama), else LiteLLM's price map; None when no price is known."""
    set_by_admin = admin_prices().get(model_id)
    if set_by_admin is not None:
        return set_by_admin[0] / 1e6, set_by_admin[1] / 1e6
    if (
        provider in FREE_PROVIDERS
        or model_id.startswith(FREE_PREFIXES)
        or _litellm_target(model_id, provider).startswith(FREE_PREFIXES)
    ):
        return 0.0, 0.0
    prices = price_map()
    bare = model_id.split("/", 1)[1] if model_id.startswith(f"{provider}/") else model_id
    for name in (model_id, bare, f"{provider}/{bare}", f"vertex_ai/{bare}" if provider == "gemini" else None):
        entry = prices.get(name) if name else None
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return float(entry.get("input_cost_per_token") or 0), float(entry.get("output_cost_per_token") or 0)
    return None


def _litellm_target(model_id: str, provider: str) -> str:
    """The model a litellm entry calls ("ollama/llama3"), from the admin's LLM_MODELS."""
    if provider != "litellm":
        return ""
    try:
        return str(getattr(get_model(model_id), "litellm_kwargs", {}).get("model") or "")
    except KeyError:
        return ""
