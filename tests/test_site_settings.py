"""The admin settings' snapshot under load: a reload never waits on another while holding a connection."""

import concurrent.futures
import logging
import threading

import pytest
from sqlalchemy import select

from tests.support.waiting import wait_for
from webapp import site_settings
from webapp.extensions import db


@pytest.fixture
def database_url(tmp_path):  # a file: SQLite then has a real pool, as PostgreSQL does
    return f"sqlite:///{tmp_path / 'settings.db'}"


@pytest.fixture
def app_config(app_config):
    # One pooled connection, so two requests contend for it as a hundred do for a full pool.
    return {**app_config, "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0, "pool_timeout": 3}}


def test_a_reload_never_deadlocks_with_a_request_that_holds_the_pooled_connection(app, caplog):
    with app.app_context():
        site_settings.set_site("default_model", "echo")
        db.session.commit()
        site_settings.invalidate()
    holding = threading.Event()

    def request_holding_a_connection():
        with app.app_context():
            db.session.execute(select(1))  # the request's session holds the only connection
            holding.set()
            # Another request is reloading meanwhile: it holds the reload and waits for this connection.
            wait_for(site_settings._lock.locked, 5, "the other request reloading")
            seen = site_settings.snapshot().site.get("default_model")
            db.session.remove()
            return seen

    def request_reloading():
        holding.wait(5)
        with app.app_context():
            seen = site_settings.snapshot().site.get("default_model")
            db.session.remove()
            return seen

    with caplog.at_level(logging.WARNING, logger="webapp.site_settings"):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            holder, reloader = pool.submit(request_holding_a_connection), pool.submit(request_reloading)
            assert holder.result(10) == "echo"
            assert reloader.result(10) == "echo"  # not the fallback after the pool timed out
    assert "unavailable" not in caplog.text
