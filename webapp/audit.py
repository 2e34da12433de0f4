"""The audit log of admin changes: ``record(actor, action, target, before, after)``.

Values under secret-looking keys are masked before they are stored, so a
careless caller cannot put a password or an API key in the log.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select

from .extensions import db
from .models import AuditEvent, User

MASK = "***"
SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey", "key_encrypted")
PAGE_SIZE = 50


def mask(value):
    if isinstance(value, dict):
        return {k: _mask_item(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def _is_secret(key) -> bool:
    lowered = str(key).lower()
    return any(word in lowered for word in SECRET_WORDS)


def _mask_item(key, value):
    if _is_secret(key) and value not in (None, ""):
        # A key hint ("…abcd", four characters) is what pages show anyway; anything else is hidden.
        if isinstance(value, str) and value.startswith("…") and len(value) <= 5:
            return value
        return MASK
    return mask(value)


def record(
    actor: User | None, action: str, target: str = "", before: dict | None = None, after: dict | None = None
) -> AuditEvent:
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        actor_name=actor.username if actor is not None else "system",
        action=action,
        target=target[:200],
        before=mask(before) if before is not None else None,
        after=mask(after) if after is not None else None,
    )
    db.session.add(event)
    return event


def events(page: int = 1, query: str = "") -> tuple[list[AuditEvent], int]:
    """A page of events, newest first, optionally filtered by actor, action or target; and the page count."""
    statement = select(AuditEvent)
    if query:
        pattern = f"%{query.lower()}%"
        statement = statement.where(
            or_(
                func.lower(AuditEvent.actor_name).like(pattern),
                func.lower(AuditEvent.action).like(pattern),
                func.lower(AuditEvent.target).like(pattern),
            )
        )
    total = db.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    rows = db.session.scalars(statement.order_by(AuditEvent.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))
    return list(rows), pages
