"""Usage: tokens, requests and estimated cost per day, user and model, from the generations table.

Prices come from litellm's model price map (the JSON file litellm ships and
reads with ``LITELLM_LOCAL_MODEL_COST_MAP=True``). The file is read straight
from the installed package, so the page does not pay for litellm's 4-second
import; if the file moves, litellm itself is imported (once, lazily).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from .extensions import db
from .models import Generation, User, utcnow

log = logging.getLogger(__name__)

PRICE_FILE = "model_prices_and_context_window_backup.json"
FREE_PROVIDERS = {"echo"}
_prices: dict | None = None
_prices_lock = threading.Lock()


@dataclass
class UsageRow:
    day: str
    user: str
    model_id: str
    provider: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: float | None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


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


def unit_prices(model_id: str, provider: str) -> tuple[float, float] | None:
    """(input, output) USD per token, or None when the price map does not know the model."""
    if provider in FREE_PROVIDERS:
        return 0.0, 0.0
    prices = price_map()
    bare = model_id.split("/", 1)[1] if model_id.startswith(f"{provider}/") else model_id
    for name in (model_id, bare, f"{provider}/{bare}", f"vertex_ai/{bare}" if provider == "gemini" else None):
        entry = prices.get(name) if name else None
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return float(entry.get("input_cost_per_token") or 0), float(entry.get("output_cost_per_token") or 0)
    return None


def usage_rows(days: int = 30, username: str | None = None) -> list[UsageRow]:
    """One row per (day, user, model) over the last ``days`` days, newest day first."""
    since = utcnow() - timedelta(days=days)
    day = func.date(Generation.created_at)
    statement = (
        select(
            day,
            User.username,
            Generation.model_id,
            Generation.provider,
            func.count(Generation.id),
            func.coalesce(func.sum(Generation.input_tokens), 0),
            func.coalesce(func.sum(Generation.output_tokens), 0),
        )
        .join(User, User.id == Generation.user_id)
        .where(Generation.created_at >= since)
        .group_by(day, User.username, Generation.model_id, Generation.provider)
        .order_by(day.desc(), User.username, Generation.model_id)
    )
    if username:
        statement = statement.where(func.lower(User.username) == username.strip().lower())
    rows = []
    for day_value, user, model_id, provider, requests, input_tokens, output_tokens in db.session.execute(statement):
        prices = unit_prices(model_id, provider)
        cost = None if prices is None else input_tokens * prices[0] + output_tokens * prices[1]
        rows.append(
            UsageRow(
                _day(day_value), user, model_id, provider, int(requests), int(input_tokens), int(output_tokens), cost
            )
        )
    return rows


def _day(value) -> str:
    if isinstance(value, (date, datetime)):
        return value.strftime("%Y-%m-%d")
    return str(value)[:10]


def totals(rows: list[UsageRow]) -> dict:
    known = [r.cost for r in rows if r.cost is not None]
    return {
        "requests": sum(r.requests for r in rows),
        "input_tokens": sum(r.input_tokens for r in rows),
        "output_tokens": sum(r.output_tokens for r in rows),
        "cost": sum(known) if known else None,
        "cost_complete": len(known) == len(rows),
    }


def daily_chart(rows: list[UsageRow], days: int, width: int = 720, height: int = 200) -> dict:
    """Bars of tokens per day (oldest left) as plain numbers for an inline SVG."""
    today = utcnow().date()
    labels = [(today - timedelta(days=offset)).strftime("%Y-%m-%d") for offset in range(days - 1, -1, -1)]
    per_day = {label: 0 for label in labels}
    for row in rows:
        if row.day in per_day:
            per_day[row.day] += row.tokens
    peak = max(per_day.values(), default=0) or 1
    top, bottom, left = 10, 24, 48
    plot_height = height - top - bottom
    slot = (width - left) / max(len(labels), 1)
    bars = []
    for index, label in enumerate(labels):
        value = per_day[label]
        bar_height = round(plot_height * value / peak, 1)
        bars.append(
            {
                "x": round(left + index * slot + slot * 0.1, 1),
                "y": round(top + plot_height - bar_height, 1),
                "width": round(slot * 0.8, 1),
                "height": bar_height,
                "day": label,
                "tokens": value,
            }
        )
    step = max(1, len(labels) // 6)
    ticks = [{"x": round(left + i * slot + slot / 2, 1), "label": labels[i][5:]} for i in range(0, len(labels), step)]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "ticks": ticks,
        "peak": peak if peak > 1 else max(per_day.values(), default=0),
        "left": left,
        "top": top,
        "baseline": top + plot_height,
    }


def _cell(value: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheets: make it plain text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_csv(rows: list[UsageRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["day", "user", "model", "provider", "requests", "input_tokens", "output_tokens", "estimated_cost_usd"]
    )
    for r in rows:
        writer.writerow(
            [
                r.day,
                _cell(r.user),
                _cell(r.model_id),
                _cell(r.provider),
                r.requests,
                r.input_tokens,
                r.output_tokens,
                "" if r.cost is None else f"{r.cost:.6f}",
            ]
        )
    return out.getvalue()
