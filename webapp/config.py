"""Configuration: environment > .env > instance/config.py > defaults.

``load_config`` returns a plain dict so the same rules serve the Flask app, the
worker and plain scripts using :mod:`webapp.llm`.
"""

import json
import os
import secrets
from pathlib import Path

from dotenv import dotenv_values

from .llm.settings import DEFAULTS as LLM_DEFAULTS
from .llm.settings import LLM_ENV_KEYS
from .paths import PROJECT_ROOT, default_redis_url, ensure_instance_path

# Variables read from the environment (or .env). Values are strings there; the
# JSON ones are decoded so instance/config.py and the environment can agree.
ENV_KEYS = (
    *LLM_ENV_KEYS,
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "JOB_TIMEOUT",
    "WORKER_CONCURRENCY",
    "SESSION_COOKIE_SECURE",
    "RQ_QUEUE_NAME",
    "TRUSTED_PROXIES",
    "METRICS_TOKEN",
    "RETRY_MAX_ATTEMPTS",
    "RETRY_BACKOFF_BASE",
    "LOGIN_MAX_FAILURES",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "DEFAULT_TOKENS_PER_DAY",
    "DEFAULT_MONTHLY_BUDGET",
    "JWT_ACCESS_MINUTES",
    "JWT_REFRESH_DAYS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "WORKER_ALIVE_TTL",
    "WORKER_SWEEP_INTERVAL",
    "QUEUED_GRACE",
    "HOST",
    "PORT",
    "WEB_WORKERS",
    "WEB_CONNECTIONS",
    "SSE_HEARTBEAT_SECONDS",
    "WEB_KEEPALIVE",
    # Single sign-on (webapp.sso, docs/teams.md).
    "OIDC_ISSUER",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "OIDC_SCOPES",
    "OIDC_GROUPS_CLAIM",
    "OIDC_ADMIN_GROUPS",
    "OIDC_BUTTON_LABEL",
    "OIDC_ONLY",
    "FINAL_WRITE_RETRY_SECONDS",
)
JSON_KEYS = {"LLM_MODELS", "TRUSTED_PROXIES"}
FLOAT_KEYS = {
    "SSE_HEARTBEAT_SECONDS",
    "WORKER_ALIVE_TTL",
    "WORKER_SWEEP_INTERVAL",
    "QUEUED_GRACE",
    "ECHO_DELAY",
    "LLM_REQUEST_TIMEOUT",
    "LLM_CONNECT_TIMEOUT",
    "RETRY_BACKOFF_BASE",
    "DEFAULT_MONTHLY_BUDGET",
    "FINAL_WRITE_RETRY_SECONDS",
}
INT_KEYS = {
    "PORT",
    "WEB_WORKERS",
    "WEB_CONNECTIONS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "JOB_TIMEOUT",
    "WORKER_CONCURRENCY",
    "LOGIN_MAX_FAILURES",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "DEFAULT_TOKENS_PER_DAY",
    "RETRY_MAX_ATTEMPTS",
    "JWT_ACCESS_MINUTES",
    "JWT_REFRESH_DAYS",
    "WEB_KEEPALIVE",
}
BOOL_KEYS = {"SESSION_COOKIE_SECURE", "OIDC_ONLY"}

DEFAULTS = {
    **LLM_DEFAULTS,  # the LLM layer's own (it stands alone): default model, OpenAI model, timeouts, ...
    "JOB_TIMEOUT": 600,
    # Per-user defaults when neither the user nor the admin settings say otherwise; 0 = unlimited.
    "DEFAULT_REQUESTS_PER_MINUTE": 60,
    "DEFAULT_TOKENS_PER_DAY": 0,
    "DEFAULT_MONTHLY_BUDGET": 0.0,  # dollars per calendar month (UTC); see docs/teams.md
    "RETRY_MAX_ATTEMPTS": 3,  # provider calls per generation when errors are transient
    "RETRY_BACKOFF_BASE": 1.0,  # seconds; doubles each attempt, with full jitter, capped at 20 s
    "WORKER_CONCURRENCY": 50,
    "RQ_QUEUE_NAME": "switchboard",
    "TRUSTED_PROXIES": 0,
    "JWT_ACCESS_MINUTES": 15,  # lifetime of an API access token
    "JWT_REFRESH_DAYS": 7,  # lifetime of an API refresh token
    "SSE_HEARTBEAT_SECONDS": 15.0,  # comment lines on an idle reply event stream, so proxies keep it open
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # None: Secure exactly when the request came over HTTPS (see security.py).
    "SESSION_COOKIE_SECURE": None,
    "LOGIN_MAX_FAILURES": 10,  # per username (and 5x that per client address) in 15 minutes
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    # How long a SQLite writer waits for the lock before webapp.database.write backs off and tries again.
    "SQLITE_BUSY_TIMEOUT_MS": 5000,
    # Workers: how soon a silent worker counts as dead, how often recovery sweeps, and how long a
    # queued reply may wait for its job to appear before the sweep queues it again (seconds).
    "WORKER_ALIVE_TTL": 15.0,
    "WORKER_SWEEP_INTERVAL": 10.0,
    "QUEUED_GRACE": 10.0,
    # How long a worker keeps trying to save a finished reply while the database is unreachable (a
    # restart); past that it leaves the record in Redis and the recovery sweep saves it once the database is back.
    "FINAL_WRITE_RETRY_SECONDS": 120.0,
    # `make run` (webapp.serve): where gunicorn listens, its (gevent) processes and connections each.
    "HOST": "127.0.0.1",
    "PORT": 8000,
    "WEB_WORKERS": 2,
    "WEB_CONNECTIONS": 4000,
    # Seconds gunicorn keeps an idle connection, and waits for a new connection's first request. Its 2 s
    # default cut requests that had arrived in time when a process stalled for longer (the clock restarts
    # late); above a proxy's idle timeout for upstream connections (nginx: 60 s), so the proxy closes first.
    "WEB_KEEPALIVE": 75,
    "WTF_CSRF_TIME_LIMIT": None,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
}


def _coerce(key, value):
    if not isinstance(value, str):
        return value
    if key in JSON_KEYS:
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{key} must be valid JSON: {exc.msg}") from None
    if key in FLOAT_KEYS:
        return float(value)
    if key in INT_KEYS:
        return int(value)
    if key in BOOL_KEYS:
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return value


def _read_instance_config(path: Path) -> dict:
    config_file = path / "config.py"
    if not config_file.exists():
        return {}
    namespace: dict = {"__file__": str(config_file)}
    exec(compile(config_file.read_text(), str(config_file), "exec"), namespace)
    return {k: v for k, v in namespace.items() if k.isupper()}


def normalize_database_url(url: str) -> str:
    # SQLAlchemy's bare "postgresql://" means psycopg2; we ship psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _secret_key(instance: Path) -> str:
    key_file = instance / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def load_config(overrides: dict | None = None) -> dict:
    instance = ensure_instance_path()
    config = dict(DEFAULTS)
    config.update(_read_instance_config(instance))
    dotenv_file = PROJECT_ROOT / ".env"
    if dotenv_file.exists():
        config.update({k: v for k, v in dotenv_values(dotenv_file).items() if k in ENV_KEYS and v is not None})
    config.update({k: os.environ[k] for k in ENV_KEYS if k in os.environ})
    if overrides:
        config.update(overrides)
    config = {k: _coerce(k, v) for k, v in config.items()}

    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _secret_key(instance)
    config.setdefault("DATABASE_URL", f"sqlite:///{instance / 'switchboard.db'}")
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(config["DATABASE_URL"])
    config.setdefault("REDIS_URL", default_redis_url())
    return config
