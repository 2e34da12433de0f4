"""The sidebar's conversations grouped by when they were last active: Today, Yesterday, Previous 7 days, Older.

Days are UTC days, as the server stores times (a reader far from UTC may see an evening chat under Yesterday).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..models import Conversation, utcnow
from . import bp

GROUPS = ("Today", "Yesterday", "Previous 7 days", "Older")


def group_label(updated_at: datetime, now: datetime) -> str:
    days = (now.date() - updated_at.date()).days
    if days <= 0:
        return GROUPS[0]
    if days == 1:
        return GROUPS[1]
    if days <= 7:
        return GROUPS[2]
    return GROUPS[3]


def group_by_date(conversations: Iterable[Conversation], now: datetime | None = None) -> list[tuple[str, list]]:
    """(label, conversations) for each group that has any, in the order above; each keeps the given order."""
    now = now or utcnow()
    groups: dict[str, list] = {label: [] for label in GROUPS}
    for conversation in conversations:
        groups[group_label(conversation.updated_at, now)].append(conversation)
    return [(label, items) for label, items in groups.items() if items]


@bp.context_processor
def sidebar_helpers():
    return {"group_by_date": group_by_date}
