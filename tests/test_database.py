"""SQLite as a default a team can lean on: WAL, NORMAL sync, a busy timeout, and writes retried past a held lock."""

import concurrent.futures
import logging
import sqlite3

import pytest
from sqlalchemy import func, select, text

from tests.support.chat import send
from tests.support.waiting import wait_for
from webapp.extensions import db
from webapp.models import Generation, Message


@pytest.fixture
def database_url(tmp_path):  # these are about SQLite's locking
    return f"sqlite:///{tmp_path / 'locks.db'}"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "SQLITE_BUSY_TIMEOUT_MS": 100}


def test_every_connection_is_tuned(app):
    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 100


class HeldLock:
    """Another process's long write transaction: SQLite's write lock, held until released."""

    def __init__(self, app):
        with app.app_context():
            path = db.engine.url.database
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("BEGIN IMMEDIATE")

    def release(self):
        self.connection.execute("COMMIT")
        self.connection.close()


def test_a_message_sent_while_the_database_is_locked_waits_and_is_saved_once(client, auth, app, caplog):
    auth.signup()
    caplog.set_level(logging.INFO, logger="webapp.database")
    lock = HeldLock(app)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            sending = pool.submit(send, client, "held up by a lock")
            # Longer than the busy timeout several times over: the write backs off and tries again.
            wait_for(lambda: caplog.text.count("database busy") >= 3, 20, "retries while the lock is held")
            assert not sending.done()
            lock.release()
            lock = None
            response = sending.result(timeout=30)
    finally:
        if lock is not None:
            lock.release()
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id))) == 1
        assert db.session.scalar(select(func.count(Generation.id))) == 1


def test_the_workers_claim_waits_out_a_lock(client, auth, app, run_jobs, caplog):
    auth.signup()
    send(client, "claim me")
    caplog.set_level(logging.INFO, logger="webapp.database")
    lock = HeldLock(app)

    def release_after_retries():
        try:
            wait_for(lambda: caplog.text.count("database busy") >= 3, 20, "the claim retrying")
        finally:
            lock.release()

    # The worker runs here (RQ's worker wants the main thread); the lock is let go from another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        releasing = pool.submit(release_after_retries)
        run_jobs()
        releasing.result(timeout=30)
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        assert generation.status == "succeeded" and "claim me" in generation.text
