"""Logs: request ids, log context and redaction.

Log records carry ``request_id`` and ``generation_id`` (set by the web per request
and by the worker per job), and every message passes through the same secret
redaction the LLM errors use, so a key that slips into a log line is masked.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from flask import Flask, g, request

from .llm.errors import redact

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
generation_id_var: ContextVar[str] = ContextVar("generation_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s gen=%(generation_id)s]: %(message)s"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ContextFilter(logging.Filter):
    """Adds the request and generation ids, and masks secrets in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.generation_id = generation_id_var.get()
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Root logging with the context filter on every handler (idempotent)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=LOG_FORMAT)
    for handler in root.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
            if handler.formatter is None or "%(request_id)s" not in (handler.formatter._fmt or ""):
                handler.setFormatter(logging.Formatter(LOG_FORMAT))


def init_request_ids(app: Flask) -> None:
    """Every request gets an id (the client's X-Request-ID when it is sane), in its log lines and its answer."""

    @app.before_request
    def start_request():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        g.request_token = request_id_var.set(g.request_id)

    @app.after_request
    def send_request_id(response):
        response.headers.setdefault("X-Request-ID", g.get("request_id", "-"))
        return response

    @app.teardown_request
    def reset_request_id(_exc):
        token = g.pop("request_token", None)
        if token is not None:
            request_id_var.reset(token)
