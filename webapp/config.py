"""Configuration: environment > .env > instance/config.py > defaults.

``load_config`` returns a plain dict so the same rules serve the Flask app, the
worker and plain scripts using :mod:`webapp.llm`.
"""

import json
import os
import secrets
from pathlib import Path

from dotenv import dotenv_values

from .llm.config import LLM_SETTINGS, Setting
from .paths import PROJECT_ROOT, default_redis_url, ensure_instance_path

COMPUTED = object()  # a default that load_config works out (shown_default says how)

# Every setting, once: name (the environment variable), kind, default and what it is for. The loader, .env
# parsing and docs/configuration.md (checked by tests/test_config.py) all come from this table.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SECRET_KEY",
        "secret",
        COMPUTED,
        "Signs sessions and CSRF tokens, and encrypts stored provider keys.",
        "generated into `instance/secret_key` on first run",
    ),
    Setting(
        "DATABASE_URL",
        "str",
        COMPUTED,
        "Any SQLAlchemy URL; `postgresql://user:pass@host/db` works (psycopg 3).",
        "`sqlite:///instance/switchboard.db`",
    ),
    Setting(
        "REDIS_URL",
        "str",
        COMPUTED,
        "Redis for the job queue and live reply text; when set, no embedded Valkey is started.",
        "`unix://instance/valkey.sock` (embedded Valkey)",
    ),
    *LLM_SETTINGS,
    Setting("JOB_TIMEOUT", "int", 600, "Seconds a generation job may run."),
    Setting(
        "WORKER_CONCURRENCY",
        "int",
        50,
        "Generations one worker process runs at once, in threads (1: RQ's forking worker).",
    ),
    Setting("RQ_QUEUE_NAME", "str", "switchboard", "The RQ queue."),
    Setting(
        "RETRY_MAX_ATTEMPTS",
        "int",
        3,
        "Provider calls per reply on transient errors (429, 5xx, timeouts, refused connections).",
    ),
    Setting(
        "RETRY_BACKOFF_BASE",
        "float",
        1.0,
        "Seconds of backoff before the second attempt, doubling each time with full jitter (capped at 20 s), "
        "unless the provider's Retry-After says otherwise.",
    ),
    Setting(
        "DEFAULT_REQUESTS_PER_MINUTE",
        "int",
        60,
        "Requests a user may start per minute, unless their own limit says otherwise (0: unlimited).",
    ),
    Setting(
        "DEFAULT_TOKENS_PER_DAY",
        "int",
        0,
        "Tokens a user may use per day, unless their own limit says otherwise (0: unlimited).",
    ),
    Setting(
        "DEFAULT_MONTHLY_BUDGET",
        "float",
        0.0,
        "Dollars a user may spend per calendar month (UTC), unless their own or their groups' budget says "
        "otherwise (0: unlimited); see docs/teams.md.",
    ),
    Setting("METRICS_TOKEN", "secret", None, "Bearer token for `/metrics` (admins can always read it)."),
    Setting("TRUSTED_PROXIES", "json", 0, "How many reverse proxies in front may set `X-Forwarded-For/Proto/Host`."),
    Setting(
        "SESSION_COOKIE_SECURE",
        "bool",
        None,
        "Cookies are `Secure` whenever the request came over HTTPS; set `true` to force it.",
        "automatic",
    ),
    Setting(
        "LOGIN_MAX_FAILURES",
        "int",
        10,
        "Failed sign-ins per username and client address (five times as many per address) in 15 minutes "
        "before that client pauses.",
    ),
    Setting("JWT_ACCESS_MINUTES", "int", 15, "Lifetime of an API access token."),
    Setting("JWT_REFRESH_DAYS", "int", 7, "Lifetime of an API refresh token."),
    Setting(
        "SQLITE_BUSY_TIMEOUT_MS",
        "int",
        5000,
        "How long a SQLite write waits for the lock before backing off and trying again (for up to 30 s).",
    ),
    Setting("WORKER_ALIVE_TTL", "float", 15.0, "Seconds before a silent worker counts as dead."),
    Setting("WORKER_SWEEP_INTERVAL", "float", 10.0, "Seconds between the workers' recovery sweeps."),
    Setting(
        "QUEUED_GRACE",
        "float",
        10.0,
        "Seconds a queued reply may wait for its job to appear before the sweep queues it again.",
    ),
    Setting(
        "FINAL_WRITE_RETRY_SECONDS",
        "float",
        120.0,
        "How long a worker keeps retrying a finished reply's database write while the database is unreachable "
        "(a restart); past that the record waits in Redis and the recovery sweep saves it once the database is back.",
    ),
    Setting("HOST", "str", "127.0.0.1", "Where `make run` serves."),
    Setting("PORT", "int", 8000, "The port `make run` serves on."),
    Setting("WEB_WORKERS", "int", 2, "gunicorn (gevent) processes `make run` starts: one per core."),
    Setting("WEB_CONNECTIONS", "int", 4000, "Connections each gunicorn process holds (open reply streams included)."),
    Setting(
        "WEB_KEEPALIVE",
        "int",
        75,
        "Seconds gunicorn keeps an idle connection open, and waits for a new connection's first request "
        "(gunicorn's own 2 s dropped requests that had arrived in time when a process stalled for longer). "
        "Keep a proxy's idle timeout for upstream connections below it.",
    ),
    Setting(
        "OIDC_ISSUER",
        "str",
        None,
        "Single sign-on: the OpenID Connect issuer URL (discovery); on when this and `OIDC_CLIENT_ID` are set. "
        "See docs/teams.md.",
    ),
    Setting("OIDC_CLIENT_ID", "str", None, "Single sign-on: the client registered at the identity provider."),
    Setting("OIDC_CLIENT_SECRET", "secret", None, "Single sign-on: that client's secret."),
    Setting("OIDC_SCOPES", "str", None, "Single sign-on: scopes asked for.", "`openid email profile`"),
    Setting(
        "OIDC_GROUPS_CLAIM", "str", None, "Single sign-on: the ID token claim listing the user's groups.", "`groups`"
    ),
    Setting("OIDC_ADMIN_GROUPS", "str", None, "Single sign-on: comma-separated groups whose members are admins."),
    Setting("OIDC_BUTTON_LABEL", "str", None, "The single sign-on button's text.", '"Sign in with single sign-on"'),
    Setting(
        "OIDC_ONLY",
        "bool",
        None,
        "`true`: no local sign-up or password sign-in, except for accounts an admin marks as break-glass.",
        "`false`",
    ),
    Setting(
        "SSE_HEARTBEAT_SECONDS", "float", 15.0, "Seconds between heartbeat comments on an idle reply event stream."
    ),
    Setting("ATTACHMENT_MAX_FILES", "int", 5, "Images and PDFs one message may carry (see docs/attachments.md)."),
    Setting(
        "ATTACHMENT_MAX_TOTAL_MB",
        "float",
        25,
        "MB the files of one message may take together; a larger request is refused from its size, unread.",
    ),
    Setting(
        "ATTACHMENT_TYPES",
        "str",
        "image/png,image/jpeg,image/webp,image/gif,application/pdf",
        "Comma-separated types that may be attached (each checked from the file's bytes; only these five are known).",
    ),
    Setting(
        "SIGNUP_POLICY",
        "str",
        "open",
        "Starting sign-up policy: `open`, `approval`, `invite` or `closed`; admins change it on Admin → Sign-up "
        "(docs/administration.md). `make run` warns when it serves beyond loopback with sign-up open.",
    ),
    Setting(
        "SIGNUP_MAX_PER_HOUR",
        "int",
        10,
        "Accounts one client address may create in an hour, sign-up page and API together (0: no limit).",
    ),
    Setting(
        "SIGNUP_FIRST_ADMIN",
        "bool",
        True,
        "While no admin exists, the first account to sign up becomes the admin; `false`: admins come only from "
        "`flask create-admin` (or single sign-on), so nobody takes a freshly exposed server by signing up first.",
    ),
    Setting(
        "PASSWORD_HASH",
        "str",
        "scrypt:32768:8:1",
        "Werkzeug's method and cost for new password hashes (a stored hash keeps its own): memory-hard scrypt "
        "by default; lower it only where CPU matters more than the cost of a stolen database (the tests).",
    ),
    Setting(
        "REFRESH_REUSE_GRACE_SECONDS",
        "float",
        10.0,
        "Seconds in which a refresh token sent again (two tabs, a retry) returns the same new pair instead of "
        "ending the sign-in (docs/api.md); 0 turns the grace off.",
    ),
    Setting(
        "MAX_MESSAGE_CHARS",
        "int",
        32_000,
        "Longest message, in characters, on the chat form and the APIs alike (a 400); a request body over 2 MiB "
        "is a 413 on both.",
    ),
    Setting(
        "FAIR_SHARE_DEPTH",
        "int",
        8,
        "Fair order: how many of one user's generations may wait in the RQ queue at once (the rest wait in "
        "their user's line; RQ holds them in the order of their turn). See docs/queue.md.",
    ),
    Setting(
        "FAIR_SHARE_RUNNING",
        "int",
        8,
        "Fair share: while other users are active, how many of one user's generations may be handed out or "
        "running at once (times the user's weight); a user alone may use every worker slot. 0: no limit. "
        "See docs/queue.md.",
    ),
    Setting(
        "FAIR_SHARE_ACTIVE_SECONDS",
        "int",
        60,
        "Fair share: how long after their last reply ends a user still counts as active, so the share keeps "
        "their room free while they read it and write the next message. See docs/queue.md.",
    ),
    Setting(
        "API_CALLS_TAKEN_IN_AT_ONCE",
        "int",
        4,
        "How many of one credential's chat calls each web process takes in (signs in, checks, records and "
        "queues) at once; the rest wait their turn before any database work, so a script with hundreds of "
        "calls in flight does not crowd out everyone else's requests. Nothing is refused. 0: no limit. "
        "See docs/queue.md.",
    ),
    Setting(
        "LIVE_FLUSH_MS",
        "int",
        25,
        "The worker writes a streaming reply's text to Redis at most this often, in milliseconds (the first "
        "text at once): one round trip for many provider chunks. 0 writes every chunk as it comes.",
    ),
    Setting(
        "COOLDOWN_FAILURES",
        "int",
        3,
        "Fallback: failures of one kind (rate limited, provider down, key refused) within COOLDOWN_WINDOW_SECONDS "
        "after which a model is skipped for COOLDOWN_SECONDS (0: no cooldowns). See docs/fallback.md.",
    ),
    Setting("COOLDOWN_WINDOW_SECONDS", "float", 60.0, "Fallback: the window in which a model's failures are counted."),
    Setting(
        "COOLDOWN_SECONDS",
        "float",
        60.0,
        "Fallback: how long a model is skipped once cooling down (a provider's longer Retry-After wins).",
    ),
    Setting(
        "SIGNED_IN_CACHE_SECONDS",
        "float",
        0.0,
        "How long a web process keeps a browser's sign-in it has just looked up, so most requests load their "
        "user with one Redis read instead of the database (0, the default: the database every time). Any "
        "sign-out, revocation, disable or change of a user ends every process's entries at once. Off by default: "
        "with 50 chats at once per web process on PostgreSQL it was seen to use up the connection pool (cause not "
        "yet found), and it saves only about 0.2 ms a request.",
    ),
)
ENV_KEYS = tuple(s.name for s in SETTINGS)
KINDS = {s.name: s.kind for s in SETTINGS}

# Flask's and its extensions' own settings, fixed here (not read from the environment).
FLASK_DEFAULTS = {
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    "WTF_CSRF_TIME_LIMIT": None,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
}
DEFAULTS = {**{s.name: s.default for s in SETTINGS if s.default is not COMPUTED}, **FLASK_DEFAULTS}


def markdown_table() -> str:
    """The settings as the Markdown table in docs/configuration.md (`python -m webapp.config` prints it)."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        if s.shown_default:
            default = s.shown_default
        elif s.default in (None, "", {}):
            default = "–"
        else:
            default = f"`{json.dumps(s.default) if s.kind == 'json' else s.default}`"
        rows.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(rows) + "\n"


def _coerce(key, value):
    if not isinstance(value, str):
        return value
    kind = KINDS.get(key)
    if kind == "json":
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{key} must be valid JSON: {exc.msg}") from None
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
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


def _check_password_hash(method: str) -> None:
    """A method werkzeug can use, refused at start rather than at someone's sign-up (one hash of a word)."""
    from werkzeug.security import generate_password_hash

    try:
        generate_password_hash("check", method)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"PASSWORD_HASH {method!r} does not work: use scrypt[:N:r:p] or pbkdf2:sha256[:iterations] ({exc})"
        ) from None


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

    _check_password_hash(str(config.get("PASSWORD_HASH")))
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _secret_key(instance)
    config.setdefault("DATABASE_URL", f"sqlite:///{instance / 'switchboard.db'}")
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(config["DATABASE_URL"])
    config.setdefault("REDIS_URL", default_redis_url())
    return config


def write_docs_table(path: Path = PROJECT_ROOT / "docs" / "configuration.md") -> None:
    """Put the current table between the markers of docs/configuration.md."""
    page = path.read_text()
    head, rest = page.split(DOCS_START, 1)
    _old, tail = rest.split(DOCS_END, 1)
    path.write_text(head + DOCS_START + markdown_table() + DOCS_END + tail)


DOCS_START, DOCS_END = "<!-- settings table: generated -->\n", "<!-- end of settings table -->"

if __name__ == "__main__":  # python -m webapp.config [--write]: print the table, or write it into the docs
    import sys

    write_docs_table() if "--write" in sys.argv else print(markdown_table(), end="")
