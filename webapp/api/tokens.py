"""JSON Web Tokens for the API: HS256 only, with ``exp``, ``iat``, ``type``, ``sub`` and the user's session version.

Bumping a user's ``session_version`` (sign out everywhere, disable) makes every token issued before invalid.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import jwt
from flask import current_app

from ..extensions import db
from ..models import User
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


def issue(user: User, kind: str) -> str:
    now = int(time.time())
    payload = {"sub": str(user.id), "type": kind, "ver": user.session_version, "iat": now,
               "exp": now + _lifetime(kind), "jti": secrets.token_hex(8)}
    return jwt.encode(payload, _signing_key(), algorithm=ALGORITHM)


def issue_pair(user: User) -> dict:
    return {"access": issue(user, ACCESS), "refresh": issue(user, REFRESH)}


def invalid(message: str = "Token is invalid or expired.") -> ApiError:
    return ApiError(401, message, "token_not_valid")


def user_for_token(token: str, kind: str) -> User:
    """The active user a valid token of ``kind`` names; ``ApiError(401)`` otherwise."""
    try:
        payload = jwt.decode(token, _signing_key(), algorithms=[ALGORITHM],
                             options={"require": ["exp", "iat", "sub", "type"]})
    except jwt.ExpiredSignatureError:
        raise invalid("Token has expired; get a new one.") from None
    except jwt.InvalidTokenError:
        raise invalid() from None
    if payload.get("type") != kind:
        raise invalid(f"Token is not an {kind} token." if kind == ACCESS else f"Token is not a {kind} token.")
    try:
        user = db.session.get(User, int(payload["sub"]))
    except (TypeError, ValueError):
        raise invalid() from None
    if user is None or user.is_disabled:
        raise invalid("This account is disabled or no longer exists.")
    if payload.get("ver") != user.session_version:
        raise invalid("Token has been revoked; sign in again.")
    return user
