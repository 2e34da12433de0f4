"""Browser tests: the app on a real HTTP server, a real worker process, headless Debian Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.browser import ARTIFACTS, shoot_both_themes
from tests.support.stack import stop_worker, worker_command
from tests.support.threaded_server import threaded_server
from webapp.paths import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSED_TO_WORKER = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RETRY_MAX_ATTEMPTS")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required for browser tests: apt-get install chromium")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture
def database_url(tmp_path):
    # Browser tests cover the pages, not the database: SQLite only.
    return f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture
def web_server(app):
    """The app on 127.0.0.1 (threaded WSGI server), no worker: replies wait in the queue."""
    app.config["ECHO_DELAY"] = 0.08
    with threaded_server(app) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def start_worker(app_config, instance_path, tmp_path):
    """start_worker() runs a real `python -m workers` process beside the server (stopped after the test)."""
    workers = []

    def start():
        env = {
            **os.environ,
            "SWITCHBOARD_INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": app_config["DATABASE_URL"],
            "REDIS_URL": app_config["REDIS_URL"],
            "RQ_QUEUE_NAME": app_config["RQ_QUEUE_NAME"],
            "ECHO_DELAY": "0.08",
            "SIGNUP_MAX_PER_HOUR": "0",
            "SIGNUP_FIRST_ADMIN": "false",
            # Provider settings a test module gives the app reach its worker too.
            **{name: str(app_config[name]) for name in PASSED_TO_WORKER if app_config.get(name) is not None},
        }
        log_path = tmp_path / f"worker-{len(workers)}.log"
        with open(log_path, "wb") as log:  # a file, not a pipe: nothing has to read it while the test runs
            process = subprocess.Popen(
                worker_command(), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        workers.append((process, log_path))

    yield start
    for process, log_path in workers:
        stop_worker(process, log_path)


@pytest.fixture
def live_server(web_server, start_worker):
    """The app on 127.0.0.1 (threaded WSGI server) with a real `python -m workers` process beside it."""
    start_worker()
    return web_server


@pytest.fixture
def screenshot(page, request):
    def take(name: str):
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    return take


@pytest.fixture
def both_themes(page):
    """Screenshots of the current page in the light and the dark theme: NAME-light.png, NAME-dark.png."""

    def take(name: str, full_page: bool = True):
        shoot_both_themes(page, name, full_page)

    return take


@pytest.fixture
def make_user(app):
    """Create an account directly (e.g. an admin: make_user("root", role="admin"))."""
    from webapp.accounts import create_user
    from webapp.extensions import db

    def make(username: str, password: str = "correct horse battery", role: str = "user"):
        with app.app_context():
            create_user(username, password, role=role)
            db.session.commit()
        return username, password

    return make
