"""Response headers and the user loader shared by every page."""
from __future__ import annotations

from flask import Flask, redirect, request, url_for
from werkzeug.exceptions import Unauthorized

from .extensions import db, login_manager
from .models import User

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    # The id carries the session version so a bump ends every older session.
    try:
        raw_id, raw_version = user_id.split(":", 1)
        user = db.session.get(User, int(raw_id))
    except (ValueError, TypeError):
        return None
    if user is None or str(user.session_version) != raw_version or user.is_disabled:
        return None
    return user


@login_manager.unauthorized_handler
def unauthorized():
    from .errors import error_response, wants_json

    if wants_json():
        return error_response(Unauthorized("Sign in first."))
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def init_security(app: Flask) -> None:
    @app.after_request
    def set_security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        return response
