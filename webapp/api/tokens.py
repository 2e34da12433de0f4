"""JSON Web Tokens for the API: HS256 only, with ``exp``, ``iat``, ``type``, ``sub``, ``jti`` and ``sid``.

``sid`` names the token family: a server-side sign-in record (webapp.accounts.sessions, kind "api") made by one
``POST /api/token/``. Every access and refresh token of the family dies with that record (sign out
everywhere, ending it on the sessions page, an admin's disable or password reset).

Refresh tokens rotate: each refresh returns a new one and retires the one presented. The record keeps the
``jti`` of the single refresh token that may still be used, in the database rather than Redis: this is
authentication state that must survive a Redis flush or outage (a lost record would let a retired token
work again), and it sits in the same row the access check already reads. Presenting any other refresh token
of the family (a retired one, replayed by whoever stole it, or by the victim after the thief used it)
revokes the whole family.

Grace: a client that sends the same refresh token twice (two tabs, a retry after a timeout) would lose its
sign-in that way. Within ``REFRESH_REUSE_GRACE_SECONDS`` of a rotation, the token it retired answers the
very same new pair again. Nothing secret is stored for that: the new pair is derived from the retired
token's ``jti`` (an HMAC under the server's key) and the rotation's time, so it can be made again exactly.
After the grace, the retired token is a replay as before.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta

import jwt
from flask import current_app, request

from ..accounts import sessions
from ..accounts.throttle import client_address
from ..extensions import db
from ..models import User, UserSession
from .errors import ApiError

ALGORITHM = "HS256"
ACCESS, REFRESH = "access", "refresh"


def _signing_key() -> str:
    # A key of its own, derived from SECRET_KEY, so a token is never valid as a session or CSRF signature.
    return hmac.new(current_app.config["SECRET_KEY"].encode(), b"switchboard-api-jwt", hashlib.sha256).hexdigest()


def _lifetime(kind: str) -> int:
    if kind == ACCESS:
        return int(current_app.config["JWT_ACCESS_MINUTES"]) * 60
    return int(current_app.config["JWT_REFRESH_DAYS"]) * 24 * 3600


def _encode(user: User, kind: str, family_token: str, jti: str, now: int | None = None) -> str:
    now = int(time.time()) if now is None else now
    payload = {
        "sub": str(user.id),
        "type": kind,
        "sid": family_token,
        "iat": now,
        "exp": now + _lifetime(kind),
        "jti": jti,
    }
    return jwt.encode(payload, _signing_key(), algorithm=ALGORITHM)


def _pair(user: User, family_token: str, refresh_jti: str) -> dict:
    return {
        "access": _encode(user, ACCESS, family_token, secrets.token_hex(8)),
        "refresh": _encode(user, REFRESH, family_token, refresh_jti),
    }


def _successor(retired_jti: str, kind: str) -> str:
    """The jti of the token a refresh with ``retired_jti`` issues: the same every time it is asked."""
    return hmac.new(_signing_key().encode(), f"{kind}:{retired_jti}".encode(), hashlib.sha256).hexdigest()[:32]


def _rotated_pair(user: User, family_token: str, retired_jti: str, issued_at: int) -> dict:
    return {
        "access": _encode(user, ACCESS, family_token, _successor(retired_jti, ACCESS), issued_at),
        "refresh": _encode(user, REFRESH, family_token, _successor(retired_jti, REFRESH), issued_at),
    }


def _within_grace(record: UserSession, presented_jti: str) -> int | None:
    """The issue time of the pair a refresh with ``presented_jti`` made, if that was the family's last
    rotation and it happened less than REFRESH_REUSE_GRACE_SECONDS ago."""
    grace = float(current_app.config.get("REFRESH_REUSE_GRACE_SECONDS") or 0)
    if grace <= 0 or record.refreshed_at is None or record.refresh_jti != _successor(presented_jti, REFRESH):
        return None
    issued_at = int(record.refreshed_at.replace(tzinfo=UTC).timestamp())
    return issued_at if time.time() - issued_at < grace else None


def issue_pair(user: User) -> dict:
    """A new token family (a sign-in record) and its first access and refresh tokens; flushed, not committed."""
    family_token = sessions.start(
        user, sessions.API, timedelta(seconds=_lifetime(REFRESH)), client_address(), request.user_agent.string
    )
    refresh_jti = secrets.token_hex(16)
    user.current_session.refresh_jti = refresh_jti
    return _pair(user, family_token, refresh_jti)


def invalid(message: str = "Token is invalid or expired.") -> ApiError:
    return ApiError(401, message, "token_not_valid")


def _claims(token: str, kind: str) -> dict:
    try:
        payload = jwt.decode(
            token,
            _signing_key(),
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "type", "sid", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise invalid("Token has expired; get a new one.") from None
    except jwt.InvalidTokenError:
        raise invalid() from None
    if payload.get("type") != kind:
        raise invalid(f"Token is not an {kind} token." if kind == ACCESS else f"Token is not a {kind} token.")
    if not isinstance(payload["sid"], str) or not isinstance(payload["jti"], str):
        raise invalid()
    return payload


def _family(payload: dict) -> UserSession:
    record = sessions.find(payload["sid"], sessions.API)
    if record is None or str(record.user_id) != str(payload["sub"]):
        raise invalid()
    if record.user.is_disabled:
        raise invalid("This account is disabled or no longer exists.")
    if not record.is_live:
        raise invalid("Token has been revoked; sign in again.")
    return record


def user_for_token(token: str, kind: str) -> User:
    """The active user a valid, unrevoked token of ``kind`` names; ``ApiError(401)`` otherwise."""
    record = _family(_claims(token, kind))
    sessions.touch(record)
    return record.user


def rotate(refresh_token: str) -> dict:
    """A new access and refresh token for a valid refresh token, which is retired.

    A retired refresh token revokes its whole family and is refused: the revocation is committed here,
    before the 401, so the error path's rollback cannot undo it."""
    payload = _claims(refresh_token, REFRESH)
    record = _family(payload)
    now = int(time.time())
    new_expiry = datetime.fromtimestamp(now + _lifetime(REFRESH), UTC).replace(tzinfo=None)
    refreshed_at = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
    new_jti = _successor(payload["jti"], REFRESH)
    if sessions.rotate_refresh(record, payload["jti"], new_jti, new_expiry, refreshed_at):
        return _rotated_pair(record.user, payload["sid"], payload["jti"], now)
    db.session.refresh(record)  # what the rotation that got there first wrote
    issued_at = _within_grace(record, payload["jti"])
    if issued_at is not None and record.is_live:
        return _rotated_pair(record.user, payload["sid"], payload["jti"], issued_at)
    sessions.revoke(record)
    db.session.commit()
    raise invalid("This refresh token was already used: every token of this sign-in is now revoked; sign in again.")
