"""`make run`'s supervisor (supervisor.py) started from a test, and a browser's steps against it over httpx."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.forms import COMPOSER_RE, CSRF_RE, SUBMISSION_RE
from tests.support.ports import free_port
from tests.support.waiting import wait_for
from webapp.config import ENV_KEYS
from webapp.paths import PROJECT_ROOT

STARTED_RE = re.compile(r"\[switchboard\] (\w+) started \(pid (\d+)\)")
ALIVE_TTL = 2
# gunicorn closes idle connections after 2 s; a request racing that close would fail for nothing.
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


def supervisor_env(instance: Path, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS and k != "REDIS_URL"}
    env.update(
        {
            "SWITCHBOARD_INSTANCE_PATH": str(instance),  # no REDIS_URL: the embedded Valkey, as on a fresh install
            "PORT": str(port),
            "ECHO_DELAY": "0.05",
            "WORKER_ALIVE_TTL": str(ALIVE_TTL),
            "WORKER_SWEEP_INTERVAL": "1",
            "DEFAULT_REQUESTS_PER_MINUTE": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class Supervisor:
    def __init__(self, tmp_path: Path, extra_env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "serve.log"
        self.env = {**supervisor_env(tmp_path / "instance", self.port), **(extra_env or {})}
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=PROJECT_ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor"], cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_for(lambda: self.ready() or self._alive(), 60, "the app ready (web, worker, Valkey)")

    def _alive(self) -> bool:
        assert self.process.poll() is None, self.log()[-3000:]
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self, name: str) -> list[int]:
        return [int(pid) for service, pid in STARTED_RE.findall(self.log()) if service == name]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)


def sign_up(client: httpx.Client, url: str, username: str = "sam") -> None:
    csrf = CSRF_RE.search(client.get(f"{url}/auth/signup").text).group(1)
    response = client.post(
        f"{url}/auth/signup",
        data={
            "username": username,
            "password": "correct horse battery",
            "confirm": "correct horse battery",
            "csrf_token": csrf,
        },
    )
    assert response.status_code == 302, response.text[:300]


def send(client: httpx.Client, url: str, text: str) -> int:
    """Send a new chat's first message; returns its generation id."""
    page = client.get(f"{url}/chat/").text
    form = COMPOSER_RE.search(page)
    response = client.post(
        url + form.group(1),
        data={
            "csrf_token": CSRF_RE.search(form.group(2)).group(1),
            "submission_token": SUBMISSION_RE.search(form.group(2)).group(1),
            "content": text,
        },
    )
    assert response.status_code == 302, response.text[:300]
    page = client.get(url + response.headers["location"].split("#")[0]).text
    return int(re.findall(r'data-generation-id="(\d+)"', page)[-1])


def status(client: httpx.Client, url: str, generation_id: int) -> dict:
    response = client.get(f"{url}/chat/generations/{generation_id}/status", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text[:300]
    return response.json()
