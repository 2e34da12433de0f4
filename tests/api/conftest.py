"""The app served by a real WSGI server on 127.0.0.1, a real RQ worker in this process, fake providers."""

from __future__ import annotations

import threading

import pytest

import workers.app_context
from tests.fakes import closed_port_url
from tests.support.api import GEMINI_KEY, OPENAI_KEY, PASSWORD, USERNAME, http
from tests.support.thread_dump import thread_stacks
from tests.support.threaded_server import threaded_server
from webapp.accounts import create_user
from webapp.accounts.api_keys import create_key
from webapp.extensions import db
from webapp.queue import get_queue
from workers.threaded import ThreadedWorker


@pytest.fixture
def app_config(app_config, openai_server, gemini_server):
    return {
        **app_config,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": openai_server.base_url,
        "GEMINI_API_KEY": GEMINI_KEY,
        "GEMINI_API_BASE": gemini_server.url,
        "INHOUSE_API_BASE": closed_port_url() + "/v1",  # the in-house server is down
        "LLM_REQUEST_TIMEOUT": 10,
    }


@pytest.fixture
def server(app):
    """The app on a real threaded WSGI server; yields its base URL."""
    with threaded_server(app) as http:
        yield f"http://127.0.0.1:{http.server_port}"


class InProcessWorker(ThreadedWorker):
    """The project's threaded RQ worker, run in a thread of the test process until asked to stop."""

    def _install_signal_handlers(self):  # signals belong to the main thread
        pass

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        while not self._stop_requested:
            result = super().dequeue_job_and_maintain_ttl(0.2, 0.2)
            if result is not None:
                return result
        return None


@pytest.fixture
def worker(app, monkeypatch):
    """A real RQ worker running jobs concurrently with the test (jobs use this test's app)."""
    monkeypatch.setattr(workers.app_context, "_app", app)
    with app.app_context():
        queue = get_queue()
        rq_worker = InProcessWorker([queue], connection=queue.connection, concurrency=4)
    thread = threading.Thread(
        target=rq_worker.work, kwargs={"logging_level": "WARNING"}, name="api-test-worker", daemon=True
    )
    thread.start()
    yield rq_worker
    rq_worker._stop_requested = True
    thread.join(timeout=30)
    assert not thread.is_alive(), f"the worker did not stop; its threads:\n{thread_stacks()}"


@pytest.fixture
def user(app):
    with app.app_context():
        created = create_user(USERNAME, PASSWORD)
        db.session.commit()
        return created.id


@pytest.fixture
def access_token(server, user):
    return http("POST", f"{server}/api/token/", {"username": USERNAME, "password": PASSWORD}).json["access"]


@pytest.fixture
def api_key(app, user):
    from webapp.models import User

    with app.app_context():
        _record, raw_key = create_key(db.session.get(User, user), "tests")
        db.session.commit()
        return raw_key
