"""One user's usage against their limits: what the Usage page and GET /api/usage/ show."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from . import groups, usage
from .limits import effective_limits, ledger_spend, month_reset
from .models import User

CHART_DAYS = 30


def usage_report(user: User, now: float | None = None) -> dict:
    """What a user sees of their own usage (the Usage page and GET /api/usage/): this month's spend and
    tokens against their budget and their pool's, today's tokens against their daily limit, a breakdown
    by model and a day-by-day series. Read from the usage ledger (settled replies) and the replies not
    settled yet; ``None`` for a limit or budget means unlimited."""
    now = time.time() if now is None else now
    user_groups = groups.user_groups(user)
    effective = effective_limits(user, user_groups)
    today = datetime.fromtimestamp(now, UTC)
    month_start = today.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    chart_start = today.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=CHART_DAYS - 1)
    rows = usage.usage_rows(user_id=user.id, since=min(month_start, chart_start).replace(tzinfo=None))
    month_label = f"{month_start:%Y-%m}"
    month_rows = [r for r in rows if r.day[:7] == month_label]
    today_rows = [r for r in rows if r.day == f"{today:%Y-%m-%d}"]
    month = usage.totals(month_rows)
    pool = effective.pool
    pool_report = None
    if pool is not None:
        pool_report = {
            "group": pool.name,
            "cost": round(ledger_spend(now, group_id=pool.group_id), 6),
            "budget": pool.monthly_budget or None,
            "tokens_per_day": pool.tokens_per_day or None,
            "requests_per_minute": pool.requests_per_minute or None,
        }
    midnight = today.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return {
        "user": user.username,
        "groups": [g.name for g in user_groups],
        "month": {
            "month": month_label,
            "requests": month["requests"],
            "input_tokens": month["input_tokens"],
            "output_tokens": month["output_tokens"],
            "cost": round(month["cost"] or 0.0, 6),
            "cost_complete": month["cost_complete"],
            "budget": effective.monthly_budget or None,
            "resets_at": month_reset(now).isoformat().replace("+00:00", "Z"),
        },
        "pool": pool_report,
        "today": {
            "day": f"{today:%Y-%m-%d}",
            "tokens": sum(r.tokens for r in today_rows),
            "limit": effective.tokens_per_day or None,
            "resets_at": midnight.isoformat().replace("+00:00", "Z"),
        },
        "requests_per_minute": effective.requests_per_minute or None,
        "by_model": [
            {**entry, "cost": None if entry["cost"] is None else round(entry["cost"], 6)}
            for entry in usage.by_model(month_rows)
        ],
        "by_day": _by_day(rows, today, CHART_DAYS),
        "_rows": rows,  # for the page's chart; dropped from the JSON
    }


def _by_day(rows, today: datetime, days: int) -> list[dict]:
    labels = [f"{today - timedelta(days=offset):%Y-%m-%d}" for offset in range(days - 1, -1, -1)]
    per_day = {label: {"day": label, "requests": 0, "tokens": 0, "cost": 0.0} for label in labels}
    for row in rows:
        entry = per_day.get(row.day)
        if entry is not None:
            entry["requests"] += row.requests
            entry["tokens"] += row.tokens
            entry["cost"] = round(entry["cost"] + (row.cost or 0.0), 6)
    return list(per_day.values())
