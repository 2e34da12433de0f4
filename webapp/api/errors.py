"""Errors of the JSON APIs, always in OpenAI's shape: ``{"error": {"message", "type", "code"}}``."""

from __future__ import annotations

import logging

from flask import jsonify
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..database import is_transient, rollback_quietly
from ..errors import database_error
from ..message_size import TOO_LARGE, body_too_large

log = logging.getLogger(__name__)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


class ApiError(Exception):
    """Raised anywhere under the API blueprints; answered as an OpenAI-style error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        extra: dict | None = None,
        headers: dict | None = None,
        type: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or ERROR_TYPES.get(status, "api_error")
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}, **self.extra}


def error_response(error: ApiError):
    response = jsonify(error.body())
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = str(value)
    if error.status == 401:
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="switchboard"')
    return response


def handle_error(exc: Exception):
    """The one error handler of the API blueprints (it starts by leaving the database session usable)."""
    rollback_quietly()
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, RequestEntityTooLarge):  # the chat form's 413 says the same (webapp.errors)
        message = exc.description if (exc.description or "").startswith(TOO_LARGE) else body_too_large()
        return error_response(ApiError(413, message, "request_too_large"))
    if isinstance(exc, HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(ApiError(exc.code or 500, exc.description or exc.name, code))
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
    if getattr(exc, "status_code", None) == 429:  # webapp.limits.LimitExceeded: the user's own limits
        retry_after = getattr(exc, "retry_after", None) or 1
        if getattr(exc, "code", None) == "insufficient_quota":  # a spent monthly budget, in OpenAI's words
            return error_response(
                ApiError(
                    429, str(exc), "insufficient_quota", headers={"Retry-After": retry_after}, type="insufficient_quota"
                )
            )
        return error_response(ApiError(429, str(exc), "rate_limit_exceeded", headers={"Retry-After": retry_after}))
    if isinstance(exc, OperationalError) or is_transient(exc):
        return error_response(ApiError(503, database_error(exc).description, "database_unavailable"))
    log.exception("unhandled error in the API")
    return error_response(ApiError(500, "Something went wrong on our side. It has been logged.", "internal_error"))
