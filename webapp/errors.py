"""Error responses: HTML for pages, JSON for endpoints that scripts and API clients call.

An error handler must not fail itself: it rolls the database session back first (the error
may have left it needing one), and if the full page still cannot be drawn (the database is
down, so the signed-in user cannot be loaded for the top bar) it answers a plain page that
needs nothing but the error.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    NotFound,
    RequestEntityTooLarge,
    ServiceUnavailable,
)

from .access import ModelNotAllowed
from .conversations import NotOwned
from .database import is_transient, rollback_quietly
from .message_size import TOO_LARGE, body_too_large

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "The database is unavailable right now. Please try again shortly."
DATABASE_BUSY = "The server is very busy right now and could not save this in time. Nothing was lost: try again."

PLAIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><title>{code} {name} · Switchboard</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>{code} · {name}</h1><p>{description}</p><p><a href="/chat/">Back to your chats</a></p></body></html>
"""


def json_endpoint(view):
    """Marks a view that scripts call (it answers JSON): its errors, a missing sign-in included, are JSON too."""
    view.answers_json = True
    return view


def wants_json() -> bool:
    if request.blueprint in {"api"} or request.path.startswith(("/api/", "/v1/")):
        return True
    if request.endpoint and getattr(current_app.view_functions.get(request.endpoint), "answers_json", False):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


def error_response(exc: HTTPException):
    rollback_quietly()
    code = exc.code or 500
    if wants_json():
        return jsonify({"error": {"message": exc.description, "code": code, "type": exc.name}}), code
    try:
        return render_template("errors/error.html", error=exc), code
    except Exception:  # e.g. the top bar's user cannot be loaded: the database is down
        log.warning("error page for %s drawn plain (%s)", code, "the full page failed", exc_info=False)
        rollback_quietly()
        page = PLAIN_PAGE.format(code=code, name=escape(exc.name), description=escape(exc.description))
        return page, code, {"Content-Type": "text/html; charset=utf-8"}


def database_error(exc: DBAPIError) -> HTTPException:
    """What a page or API client is told about a database failure (never the driver's own words)."""
    if is_transient(exc):
        log.error("database busy beyond the retry time: %s", exc.orig.__class__.__name__)
        return ServiceUnavailable(DATABASE_BUSY)
    log.error("database unavailable: %s", exc.__class__.__name__)
    return ServiceUnavailable(DATABASE_UNAVAILABLE)


def init_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        return error_response(exc)

    @app.errorhandler(RequestEntityTooLarge)
    def handle_too_large(exc: RequestEntityTooLarge):
        if not (exc.description or "").startswith(TOO_LARGE):  # the API's handler says the same (webapp.api.errors)
            exc.description = body_too_large()
        return error_response(exc)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(exc: CSRFError):
        exc.description = (
            "This form was sent without a valid CSRF token (it may have expired). "
            "Nothing was changed: go back, reload the page and try again."
        )
        return error_response(exc)

    @app.errorhandler(NotOwned)
    def handle_not_owned(_exc: NotOwned):
        return error_response(NotFound())

    @app.errorhandler(ModelNotAllowed)
    def handle_model_not_allowed(exc: ModelNotAllowed):
        """A refused model anywhere in a request: JSON 403 for API clients, a notice and a way back for pages."""
        rollback_quietly()  # nothing half-saved
        if wants_json():
            return jsonify({"error": {"message": str(exc), "code": 403, "type": exc.code}}), 403
        flash(f"Not sent: {exc}", "error")
        target = request.referrer or ""
        if not target.startswith(request.host_url):
            target = url_for("chat.index")
        return redirect(target, code=303)

    @app.errorhandler(DBAPIError)
    def handle_database_error(exc: DBAPIError):
        if isinstance(exc, OperationalError) or is_transient(exc):
            return error_response(database_error(exc))
        return handle_unexpected(exc)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return error_response(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalServerError("Something went wrong on our side. It has been logged."))
