"""Who is calling: ``Authorization: Bearer <access token or sb- API key>``. Cookies never count."""

from __future__ import annotations

from functools import wraps

from flask import g, request

from ..accounts.api_keys import looks_like_key, user_for_key
from ..models import User
from . import tokens
from .errors import ApiError


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "Authentication credentials were not provided: send 'Authorization: Bearer <token>' "
            "with an access token from /api/token/ or an API key.",
            "not_authenticated",
        )
    return token


def authenticate() -> User:
    token = bearer_token()
    if looks_like_key(token):
        user = user_for_key(token)
        if user is None:
            raise ApiError(
                401, "Invalid API key: it is unknown, revoked, or its account is disabled.", "invalid_api_key"
            )
        return user
    return tokens.user_for_token(token, tokens.ACCESS)


def sign_in() -> User:
    """The caller, from the request's credentials (``ApiError`` 401 if they are not good); kept for the request."""
    g.api_user = authenticate()
    return g.api_user


def api_login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        sign_in()
        return view(*args, **kwargs)

    return wrapped


def current_api_user() -> User:
    return g.api_user
