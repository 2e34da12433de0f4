"""Personal API keys: created (shown once), listed, revoked, and looked up by the API.

A key is ``sb-`` plus 43 random URL-safe characters. Only its SHA-256 is stored,
with its first characters (``prefix``) so users can tell their keys apart.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import ApiKey, User, utcnow

KEY_PREFIX = "sb-"
DISPLAY_PREFIX_LENGTH = 10
# ``last_used_at`` is written at most this often per key, so busy clients do not write on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


class DuplicateKeyName(ValueError):
    """The user already has a key of that name (revoked ones included); ``str(exc)`` says so."""


def create_key(user: User, name: str) -> tuple[ApiKey, str]:
    """A new key for ``user``: the record and the raw key (the only time it exists in clear).

    Names are unique per user (a database constraint too): ``DuplicateKeyName`` otherwise.
    """
    name = " ".join(name.split()) or "API key"
    taken = db.session.scalar(select(ApiKey.id).where(ApiKey.user_id == user.id, ApiKey.name == name))
    if taken is not None:
        raise DuplicateKeyName(f"You already have a key named “{name}”: choose another name.")
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(user_id=user.id, name=name, prefix=raw_key[:DISPLAY_PREFIX_LENGTH], key_hash=hash_key(raw_key))
    db.session.add(api_key)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:  # the same name from a simultaneous request
        raise DuplicateKeyName(f"You already have a key named “{name}”: choose another name.") from None
    return api_key, raw_key


def list_keys(user: User) -> list[ApiKey]:
    return list(
        db.session.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user.id)
            .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id.desc())
        )
    )


def revoke_key(user: User, key_id: int) -> ApiKey | None:
    """Revoke one of ``user``'s keys; None when they have no such key (never someone else's)."""
    api_key = db.session.get(ApiKey, key_id)
    if api_key is None or api_key.user_id != user.id:
        return None
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
    return api_key


def user_for_key(raw_key: str) -> User | None:
    """The active user a live key belongs to, or None (unknown, revoked, or the user is disabled)."""
    # One joined query: this runs on every API call.
    found = db.session.execute(
        select(ApiKey, User)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.key_hash == hash_key(raw_key), ApiKey.revoked_at.is_(None), User.is_disabled.is_(False))
    ).first()
    if found is None:
        return None
    api_key, user = found
    now = utcnow()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        api_key.last_used_at = now
        db.session.commit()
    return user
