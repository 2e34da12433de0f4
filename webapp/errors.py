"""Error responses: HTML for pages, JSON for endpoints that scripts and API clients call."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

log = logging.getLogger(__name__)


def wants_json() -> bool:
    if request.blueprint in {"api"} or request.path.startswith(("/api/", "/v1/")):
        return True
    if request.endpoint and request.endpoint.endswith("_status"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


def error_response(exc: HTTPException):
    if wants_json():
        return jsonify({"error": {"message": exc.description, "code": exc.code, "type": exc.name}}), exc.code
    return render_template("errors/error.html", error=exc), exc.code


def init_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        return error_response(exc)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(exc: CSRFError):
        exc.description = (
            "This form was sent without a valid CSRF token (it may have expired). "
            "Nothing was changed: go back, reload the page and try again."
        )
        return error_response(exc)

    @app.errorhandler(OperationalError)
    def handle_database_down(exc: OperationalError):
        log.error("database unavailable: %s", exc.__class__.__name__)
        return error_response(ServiceUnavailable("The database is unavailable right now. Please try again shortly."))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return error_response(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalServerError("Something went wrong on our side. It has been logged."))
