"""Request ids, log context and redaction, and the counters behind /metrics.

Log records carry ``request_id`` and ``generation_id`` (set by the web per request
and by the worker per job), and every message passes through the same secret
redaction the LLM errors use, so a key that slips into a log line is masked.
Request counts and latency histograms live in Redis so /metrics sees every web
process and host, not only the one that answers the scrape.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

import redis
from flask import Flask, g, request

from .llm.errors import redact
from .queue import get_redis

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
generation_id_var: ContextVar[str] = ContextVar("generation_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s gen=%(generation_id)s]: %(message)s"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Prometheus histogram buckets (seconds) for request latency.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METRICS_KEY = "switchboard:metrics:http"


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


def _route_label() -> str:
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def record_request(connection: redis.Redis, route: str, method: str, status: int, seconds: float) -> None:
    bucket = next((b for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
    field = f"{method} {route} {status // 100}xx"
    pipe = connection.pipeline(transaction=False)
    pipe.hincrby(METRICS_KEY, f"count|{field}", 1)
    pipe.hincrbyfloat(METRICS_KEY, f"sum|{method} {route}", seconds)
    pipe.hincrby(METRICS_KEY, f"bucket|{method} {route}|{bucket}", 1)
    pipe.execute()


def init_request_tracking(app: Flask) -> None:
    @app.before_request
    def start_request():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        g.request_token = request_id_var.set(g.request_id)
        g.request_started = time.perf_counter()

    @app.after_request
    def finish_request(response):
        response.headers.setdefault("X-Request-ID", g.get("request_id", "-"))
        started = g.get("request_started")
        if started is not None and request.endpoint != "static":
            try:
                record_request(
                    get_redis(), _route_label(), request.method, response.status_code, time.perf_counter() - started
                )
            except redis.RedisError:
                pass  # metrics must never break a page
        return response

    @app.teardown_request
    def reset_request_id(_exc):
        token = g.pop("request_token", None)
        if token is not None:
            request_id_var.reset(token)
