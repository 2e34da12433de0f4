"""The app served by a real WSGI server on 127.0.0.1, a real RQ worker in this process, fake providers."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

import workers.app_context
from tests.fakes import closed_port_url
from webapp.accounts import create_user
from webapp.api_keys import create_key
from webapp.extensions import db
from webapp.queue import get_queue
from workers.threaded import ThreadedWorker

OPENAI_KEY = "sk-test-0123456789abcdef"
GEMINI_KEY = "AIzaTestKey0123456789abcdef"
USERNAME, PASSWORD = "charming_user", "secure_pwd"


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
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="api-test-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    http.server_close()
    thread.join(timeout=10)


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
    assert not thread.is_alive(), "the worker did not stop"


@dataclass
class Reply:
    status: int
    headers: dict
    text: str

    @property
    def json(self):
        return json.loads(self.text)


def http(method: str, url: str, body=None, headers: dict | None = None, raw: bytes | None = None) -> Reply:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read().decode())


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def curl(command: str, base_url: str, **values) -> Reply:
    """Run a curl example of llm-service-api.md as written, against ``base_url`` (status via -w)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    for name, value in values.items():
        command = command.replace(f"${name}", value)
    command = command.replace("http://localhost:8000", base_url).replace("http://127.0.0.1:8000", base_url)
    result = subprocess.run(
        ["bash", "-c", command + " -s -S -w '\\n%{http_code}'"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    text, _, status = result.stdout.rpartition("\n")
    return Reply(int(status), {}, text)


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
