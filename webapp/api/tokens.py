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
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta

import jwt
from flask import current_app, request

from ..accounts import sessions
from ..accounts.throttle import client_address
from ..extensions import db
from ..models import User, UserSession, utcnow
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


def _encode(user: User, kind: str, family_token: str, jti: str) -> str:
    now = int(time.time())
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
    new_jti = secrets.token_hex(16)
    new_expiry = utcnow() + timedelta(seconds=_lifetime(REFRESH))
    if not sessions.rotate_refresh(record, payload["jti"], new_jti, new_expiry):
        sessions.revoke(record)
        db.session.commit()
        raise invalid("This refresh token was already used: every token of this sign-in is now revoked; sign in again.")
    return _pair(record.user, payload["sid"], new_jti)
