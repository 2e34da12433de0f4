"""Server-side sign-ins: one ``UserSession`` record per browser sign-in or API token family.

The client holds a random token (in the signed session and remember-me cookies, or as the ``sid`` claim of
its JWTs); the database keeps only its SHA-256. Every request looks the record up by that hash (one indexed
query, joined with the user), so revoking the record ends the sign-in at once: sign-out, "sign out
everywhere", an admin's disable or password reset, or a replayed refresh token.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from flask import g
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..models import User, UserSession, utcnow
from .signed_in import Unavailable, for_this_process, version

log = logging.getLogger(__name__)

WEB, API = "web", "api"
# last_seen_at is written at most this often per sign-in, so most requests cost one read and no write.
TOUCH_INTERVAL = timedelta(seconds=60)
# Dead records (revoked or expired) are kept this long for the sessions page, then pruned at sign-in.
KEEP_DEAD = timedelta(days=7)


def hash_token(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def start(user: User, kind: str, lifetime: timedelta, ip_address: str | None, user_agent: str | None) -> str:
    """Record a new sign-in for ``user`` and return the raw token its client will hold (flushed, not committed)."""
    now = utcnow()
    db.session.execute(
        delete(UserSession)
        .where(
            UserSession.user_id == user.id,
            or_(UserSession.expires_at < now - KEEP_DEAD, UserSession.revoked_at < now - KEEP_DEAD),
        )
        .execution_options(users_changed=frozenset())  # long dead: in no cache
    )
    raw_token = secrets.token_urlsafe(32)
    record = UserSession(
        user_id=user.id,
        kind=kind,
        token_hash=hash_token(raw_token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        ip_address=(ip_address or "")[:64] or None,
        user_agent=(user_agent or "")[:255] or None,
    )
    db.session.add(record)
    db.session.flush()
    user.current_session, user.current_session_token = record, raw_token
    return raw_token


def find(raw_token: str, kind: str) -> UserSession | None:
    """The record of this token (live or not), with its user loaded in the same query."""
    if not raw_token or not isinstance(raw_token, str):
        return None
    return db.session.scalar(
        select(UserSession)
        .join(UserSession.user)
        .options(contains_eager(UserSession.user))
        .where(UserSession.token_hash == hash_token(raw_token), UserSession.kind == kind)
    )


def load_user(raw_token: str, kind: str) -> User | None:
    """The active user signed in by this token, or None when its sign-in is revoked, expired or disabled.

    A browser's sign-in comes from this process's moment-long cache when it has just been looked up and
    nothing about users or sign-ins has changed since (``webapp.accounts.signed_in``)."""
    if not raw_token or not isinstance(raw_token, str):
        return None
    cache = for_this_process() if kind == WEB else None
    entry = None
    if cache is not None:
        token_hash = hash_token(raw_token)
        try:
            changes = version()  # before the database: a change committed after it moves it
        except Unavailable:
            cache = None
        else:
            entry = cache.get(token_hash, changes)
    if entry is not None:
        user, record = cache.attach(entry)
    else:
        record = find(raw_token, kind)
        user = None if record is None else record.user
        if cache is not None and record is not None and record.is_live and not user.is_disabled:
            cache.put(token_hash, record, changes)
    if record is None or not record.is_live or user.is_disabled:
        return None
    touch(record)
    if entry is not None:
        entry.record["last_seen_at"] = record.last_seen_at  # touched at most once per interval, cache or not
    user.current_session, user.current_session_token = record, raw_token
    return user


def touch(record: UserSession) -> None:
    """Note that the sign-in was used, at most once per TOUCH_INTERVAL.

    The write waits for the end of the request (``write_touches``, called at teardown): the user
    loader runs inside whatever request asked for the user, and must neither commit that request's
    work nor take a second database connection while the request holds one (with every pooled
    connection held by a request doing the same, each would wait for the others: a deadlock until
    the pool's timeout).
    """
    now = utcnow()
    if now - record.last_seen_at < TOUCH_INTERVAL:
        return
    g.setdefault("session_touches", []).append((record.id, now))
    set_committed_value(record, "last_seen_at", now)  # the page shows it; no second write at commit


def write_touches() -> None:
    """Write the request's pending ``touch``es, after giving back its database connection."""
    touches = g.pop("session_touches", None)
    if not touches:
        return
    db.session.remove()  # the request is over: never hold two connections at once
    try:
        with db.engine.begin() as connection:
            for record_id, now in touches:
                connection.execute(
                    update(UserSession)
                    .where(UserSession.id == record_id, UserSession.last_seen_at < now - TOUCH_INTERVAL)
                    .values(last_seen_at=now)
                )
    except OperationalError:  # e.g. SQLite busy under load: "last seen" may lag, nothing else depends on it
        log.warning("could not note the last use of sign-in(s) %s", [record_id for record_id, _ in touches])


def revoke(record: UserSession) -> None:
    if record.revoked_at is None:
        record.revoked_at = utcnow()


def revoke_all(user: User) -> int:
    """End every sign-in of ``user`` (browsers and API token families); returns how many it ended."""
    result = db.session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(users_changed=frozenset({user.id}))
    )
    return result.rowcount


def revoke_own(user: User, session_id: int) -> UserSession | None:
    """End one of ``user``'s own sign-ins; None when it is not theirs (the page answers 404)."""
    record = db.session.get(UserSession, session_id)
    if record is None or record.user_id != user.id:
        return None
    revoke(record)
    return record


def list_live(user: User) -> list[UserSession]:
    return list(
        db.session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None), UserSession.expires_at > utcnow())
            .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
        )
    )


def rotate_refresh(
    record: UserSession, presented_jti: str, new_jti: str, new_expiry: datetime, refreshed_at: datetime | None = None
) -> bool:
    """Retire ``presented_jti`` in favour of ``new_jti``. False when it was not the family's current refresh
    token: already rotated (a replay) or used by a concurrent request; the caller then revokes the family.
    One conditional UPDATE, so two requests racing with the same token cannot both win."""
    result = db.session.execute(
        update(UserSession)
        .where(UserSession.id == record.id, UserSession.refresh_jti == presented_jti, UserSession.revoked_at.is_(None))
        .values(refresh_jti=new_jti, expires_at=new_expiry, last_seen_at=utcnow(), refreshed_at=refreshed_at)
        .execution_options(synchronize_session=False, users_changed=frozenset())  # API families: never cached
    )
    return result.rowcount == 1
