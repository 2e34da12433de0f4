"""Usage: tokens, requests and estimated cost per day, user and model, from the generations table.

Prices come from litellm's model price map (the JSON file litellm ships and
reads with ``LITELLM_LOCAL_MODEL_COST_MAP=True``). The file is read straight
from the installed package, so the page does not pay for litellm's 4-second
import; if the file moves, litellm itself is imported (once, lazily).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from .database import write
from .extensions import db
from .models import Generation, Group, GroupMember, UsageRecord, User, utcnow
from .prices import unit_prices

log = logging.getLogger(__name__)


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
    group: str = ""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def usage_rows(
    days: int = 30,
    username: str | None = None,
    group_id: int | None = None,
    user_id: int | None = None,
    since: datetime | None = None,
) -> list[UsageRow]:
    """One row per (day, user, group, model) over the last ``days`` days, newest day first.

    Settled generations come from the usage ledger, which outlives deleted conversations; those not
    settled yet (running, or refused before they ran) from the generations table. A row's group is the
    one its spending was charged to: the user's primary group when the reply was settled.
    """
    since = since or utcnow() - timedelta(days=days)
    name = username.strip().lower() if username else None
    merged: dict[tuple, UsageRow] = {}

    def add(day_value, user, group, model_id, provider, requests, input_tokens, output_tokens, cost, priced):
        key = (_day(day_value), user, group or "", model_id, provider)
        row = merged.get(key)
        if row is None:
            row = merged[key] = UsageRow(*key[:2], model_id, provider, 0, 0, 0, 0.0, group=key[2])
        row.requests += int(requests)
        row.input_tokens += int(input_tokens or 0)
        row.output_tokens += int(output_tokens or 0)
        if not priced or cost is None or row.cost is None:
            row.cost = None
        else:
            row.cost += float(cost)

    ledger_day = func.date(UsageRecord.created_at)
    ledger = (
        select(
            ledger_day,
            UsageRecord.username,
            UsageRecord.group_name,
            UsageRecord.model_id,
            UsageRecord.provider,
            func.count(UsageRecord.id),
            func.coalesce(func.sum(UsageRecord.input_tokens), 0),
            func.coalesce(func.sum(UsageRecord.output_tokens), 0),
            func.sum(UsageRecord.cost),
            func.count(UsageRecord.cost) == func.count(UsageRecord.id),
        )
        .where(UsageRecord.created_at >= since)
        .group_by(ledger_day, UsageRecord.username, UsageRecord.group_name, UsageRecord.model_id, UsageRecord.provider)
    )
    if name:
        ledger = ledger.where(func.lower(UsageRecord.username) == name)
    if group_id is not None:
        ledger = ledger.where(UsageRecord.group_id == group_id)
    if user_id is not None:
        ledger = ledger.where(UsageRecord.user_id == user_id)
    for (
        day_value,
        user,
        group,
        model_id,
        provider,
        requests,
        input_tokens,
        output_tokens,
        cost,
        priced,
    ) in db.session.execute(ledger):
        add(day_value, user, group, model_id, provider, requests, input_tokens, output_tokens, cost, bool(priced))

    day = func.date(Generation.created_at)
    pending = (
        select(
            day,
            User.id,
            User.username,
            Generation.model_id,
            Generation.provider,
            func.count(Generation.id),
            func.coalesce(func.sum(Generation.input_tokens), 0),
            func.coalesce(func.sum(Generation.output_tokens), 0),
        )
        .join(User, User.id == Generation.user_id)
        .outerjoin(UsageRecord, UsageRecord.generation_id == Generation.id)
        .where(Generation.created_at >= since, UsageRecord.id.is_(None))
        .group_by(day, User.id, User.username, Generation.model_id, Generation.provider)
    )
    if name:
        pending = pending.where(func.lower(User.username) == name)
    if user_id is not None:
        pending = pending.where(User.id == user_id)
    primaries = _primary_groups()
    for day_value, owner_id, user, model_id, provider, requests, input_tokens, output_tokens in db.session.execute(
        pending
    ):
        group = primaries.get(owner_id)
        if group_id is not None and (group is None or group[0] != group_id):
            continue
        prices = unit_prices(model_id, provider)
        cost = None if prices is None else int(input_tokens) * prices[0] + int(output_tokens) * prices[1]
        add(
            day_value,
            user,
            group[1] if group else "",
            model_id,
            provider,
            requests,
            input_tokens,
            output_tokens,
            cost,
            True,
        )
    return sorted(merged.values(), key=lambda r: (_descending(r.day), r.user, r.group, r.model_id, r.provider))


def _descending(day: str) -> tuple:
    return tuple(-int(part) for part in day.split("-") if part.isdigit())


def _primary_groups() -> dict[int, tuple[int, str]]:
    """user id -> (id, name) of their primary group now: the one chosen, else the first joined."""
    rows = db.session.execute(
        select(GroupMember.user_id, Group.id, Group.name, User.primary_group_id)
        .join(Group, Group.id == GroupMember.group_id)
        .join(User, User.id == GroupMember.user_id)
        .order_by(GroupMember.created_at, Group.id)
    )
    primaries: dict[int, tuple[int, str]] = {}
    for user_id, group_id, group_name, chosen in rows:
        if user_id not in primaries or group_id == chosen:
            primaries[user_id] = (group_id, group_name)
    return primaries


def record(
    generation_id: int,
    user_id: int,
    model_id: str,
    provider: str,
    source: str,
    status: str,
    input_tokens: int | None,
    output_tokens: int | None,
    created_at: datetime | None = None,
    part: int = 0,
) -> None:
    """A ledger row of the generation, written once when it is settled (a second call changes nothing).

    ``part``: 0 for the reply, 1, 2, ... for each continuation by a fallback (Continue with), so each model is
    charged its own tokens at its own prices. The caller commits. The cost is priced now; the group is the
    user's primary group now.
    """
    prices = unit_prices(model_id, provider)
    input_tokens, output_tokens = int(input_tokens or 0), int(output_tokens or 0)
    values = {
        "generation_id": generation_id,
        "part": part,
        "source": source or "web",
        "model_id": model_id,
        "provider": provider,
        "status": status,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": None if prices is None else input_tokens * prices[0] + output_tokens * prices[1],
        "created_at": created_at or utcnow(),
    }
    # ON CONFLICT DO NOTHING: the worker settling and the conversation being deleted may both write it at once.
    insert = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # One statement: the user's name and primary group (``groups.user_groups``' order: the chosen primary
    # group, else the first joined) are read by the INSERT itself. It runs for every reply.
    chosen = (
        select(GroupMember.group_id)
        .where(GroupMember.user_id == User.id, GroupMember.group_id == User.primary_group_id)
        .correlate(User)
    )
    first_joined = (
        select(Group.id)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == User.id)
        .order_by(GroupMember.created_at, Group.id)
        .limit(1)
        .correlate(User)  # only the user: the group name's own lookup must not lend it its groups row
    )
    # (Two subqueries, not one ordered by "is it the primary": SQLite cannot read the outer row in ORDER BY.)
    primary_id = func.coalesce(chosen.scalar_subquery(), first_joined.scalar_subquery())
    columns = {name: literal(value, UsageRecord.__table__.c[name].type) for name, value in values.items()}
    columns |= {
        "user_id": User.id,
        "username": User.username,
        "group_id": primary_id,
        "group_name": select(Group.name).where(Group.id == primary_id).scalar_subquery(),
    }
    written = db.session.execute(
        insert(UsageRecord)
        .from_select(list(columns), select(*columns.values()).where(User.id == user_id))
        .on_conflict_do_nothing(index_elements=["generation_id", "part"])
        .returning(UsageRecord.id)  # (rowcount: -1 from psycopg for an INSERT … SELECT)
    ).first()
    if written is None and db.session.get(User, user_id) is None:  # the user is gone: kept by number
        db.session.execute(
            insert(UsageRecord)
            .values(**values, user_id=user_id, username=f"#{user_id}", group_id=None, group_name=None)
            .on_conflict_do_nothing(index_elements=["generation_id", "part"])
        )


def record_quietly(**fields) -> None:
    """``record`` and commit, for the worker's final step: a failure is logged, never raised (the reply's
    own record is already saved), and a duplicate row (a generation settled twice) is ignored."""
    try:
        write(lambda: record(**fields))
    except IntegrityError:
        db.session.rollback()
    except Exception:
        db.session.rollback()
        log.warning("generation %s: could not write its usage record", fields.get("generation_id"), exc_info=True)


def keep_usage(generation_ids: list[int]) -> None:
    """Ledger rows for generations about to be deleted (with their conversation) that have none yet:
    deleting a conversation removes its text, never its usage. The caller commits.

    Only finished generations: one still running is recorded by its worker when it settles."""
    if not generation_ids:
        return
    settled = set(
        db.session.scalars(select(UsageRecord.generation_id).where(UsageRecord.generation_id.in_(generation_ids)))
    )
    for generation in db.session.scalars(
        select(Generation).where(Generation.id.in_([g for g in generation_ids if g not in settled]))
    ):
        record(
            generation.id,
            generation.user_id,
            generation.model_id,
            generation.provider,
            generation.source,
            generation.status,
            generation.input_tokens,
            generation.output_tokens,
            created_at=generation.created_at,
        )


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
    top, bottom, left, right = 10, 24, 48, 18  # right: room for the last day's label, centred under its bar
    plot_height = height - top - bottom
    slot = (width - left - right) / max(len(labels), 1)
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
    # About six labels, counted back from today so the axis always names the last day.
    step = max(1, len(labels) // 6)
    labelled = range(len(labels) - 1, -1, -step)
    ticks = [{"x": round(left + i * slot + slot / 2, 1), "label": labels[i][5:]} for i in reversed(labelled)]
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


def by_group(rows: list[UsageRow]) -> list[dict]:
    """Totals per group (the group charged; "" for usage of users in no group), by name."""
    groups_: dict[str, list[UsageRow]] = {}
    for row in rows:
        groups_.setdefault(row.group, []).append(row)
    return [{"group": name, **totals(members)} for name, members in sorted(groups_.items())]


def by_model(rows: list[UsageRow]) -> list[dict]:
    """Totals per model, most tokens first."""
    models: dict[tuple[str, str], list[UsageRow]] = {}
    for row in rows:
        models.setdefault((row.model_id, row.provider), []).append(row)
    summary = [
        {"model": model, "provider": provider, **totals(members)} for (model, provider), members in models.items()
    ]
    return sorted(summary, key=lambda m: (-(m["input_tokens"] + m["output_tokens"]), m["model"]))


def groups_csv(rows: list[UsageRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["group", "requests", "input_tokens", "output_tokens", "estimated_cost_usd", "cost_complete"])
    for entry in by_group(rows):
        writer.writerow(
            [
                _cell(entry["group"] or "(no group)"),
                entry["requests"],
                entry["input_tokens"],
                entry["output_tokens"],
                "" if entry["cost"] is None else f"{entry['cost']:.6f}",
                "yes" if entry["cost_complete"] else "no",
            ]
        )
    return out.getvalue()


def _cell(value: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheets: make it plain text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_csv(rows: list[UsageRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["day", "user", "model", "provider", "requests", "input_tokens", "output_tokens", "estimated_cost_usd", "group"]
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
                _cell(r.group),
            ]
        )
    return out.getvalue()
