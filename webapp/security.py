"""Response headers and the user loader shared by every page."""

from __future__ import annotations

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import Unauthorized
from werkzeug.middleware.proxy_fix import ProxyFix

from .accounts import sessions
from .errors import error_response, wants_json
from .extensions import login_manager
from .models import User

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


@login_manager.user_loader
def load_user(session_token: str) -> User | None:
    # The "user id" flask-login keeps in the session and remember-me cookies is the token of a server-side
    # sign-in record: revoking the record ends both cookies (see webapp.accounts.sessions).
    return sessions.load_user(session_token, sessions.WEB)


@login_manager.unauthorized_handler
def unauthorized():
    if wants_json():
        return error_response(Unauthorized("Sign in first."))
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


API_BLUEPRINTS = ("api", "v1")


def signed_in_request() -> bool:
    """Whether this response was made for a signed-in user, without loading the user just to ask
    (a health check must not need the database): the loaded user if a view asked for it, else the cookie."""
    user = g.get("_login_user")
    if user is not None:
        # is_anonymous reads no column: the view may have released its database session (long polls do).
        return not user.is_anonymous
    return (
        "_user_id" in session
        or request.cookies.get(current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")) is not None
    )


class SessionInterface(SecureCookieSessionInterface):
    """With SESSION_COOKIE_SECURE unset, the cookie is Secure whenever the request arrived over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        configured = app.config["SESSION_COOKIE_SECURE"]
        return request.is_secure if configured is None else bool(configured)


def init_security(app: Flask) -> None:
    app.session_interface = SessionInterface()
    if app.config.get("REMEMBER_COOKIE_SECURE") is None:
        app.config["REMEMBER_COOKIE_SECURE"] = bool(app.config["SESSION_COOKIE_SECURE"])
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:
        # X-Forwarded-* is believed only from this many configured proxies in front of us.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_prefix=proxies)

    @app.teardown_request
    def note_session_use(_exc):
        sessions.write_touches()

    @app.after_request
    def set_security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.endpoint != "static" and (
            request.blueprint in API_BLUEPRINTS or request.blueprint == "auth" or signed_in_request()
        ):  # the sign-in and sign-up pages too: their forms carry a CSRF token tied to this browser
            # Nothing personal is kept by a shared browser's cache or a proxy (overrides SSE's "no-cache");
            # an attachment's "private" (the owner's browser may keep it, no proxy may) stays.
            if not headers.get("Cache-Control", "").startswith("private"):
                headers["Cache-Control"] = "no-store"
        return response
