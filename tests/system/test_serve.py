"""``make run``'s supervisor (webapp.serve): processes that die are started again, the web stays up, and
Ctrl-C stops everything with exit status 0 and nothing left behind."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.forms import COMPOSER_RE, CSRF_RE, SUBMISSION_RE
from tests.support.ports import free_port
from tests.support.stack import GUNICORN_CHILD_RE
from tests.support.waiting import wait_for
from webapp.config import ENV_KEYS
from webapp.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow

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
            [sys.executable, "-m", "webapp.serve"], cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
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


@pytest.fixture
def supervisor(tmp_path):
    running = Supervisor(tmp_path)
    yield running
    running.stop()


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


def test_a_killed_worker_is_restarted_and_its_reply_resolved_while_pages_keep_answering(supervisor):
    url = supervisor.url
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        sign_up(client, url)
        generation_id = send(client, url, "a long one " + " ".join(f"word{n}" for n in range(300)))
        wait_for(lambda: len(status(client, url, generation_id)["text"]) > 30, 30, "the reply streaming")
        [worker_pid] = supervisor.pids("worker")
        os.kill(worker_pid, signal.SIGKILL)
        killed_at = time.monotonic()

        saw_gap = False

        def resolved():
            nonlocal saw_gap
            assert client.get(f"{url}/chat/").status_code == 200  # the web never went away
            readiness = httpx.get(f"{url}/readyz", timeout=5)
            if readiness.status_code == 503:
                assert readiness.json()["checks"]["workers"]["ok"] is False
                saw_gap = True
            return status(client, url, generation_id)["done"]

        # Resolved within WORKER_ALIVE_TTL plus a sweep (and the restart itself).
        wait_for(resolved, ALIVE_TTL + 1 + 15, "the killed worker's reply resolved", interval=0.05)
        final = status(client, url, generation_id)
        assert final["status"] == "failed" and final["error_code"] == "worker_lost", final
        print(f"reply resolved {time.monotonic() - killed_at:.1f} s after the kill")
        assert saw_gap, "/readyz showed no gap while no worker was alive"
        assert f"worker (pid {worker_pid}) was killed by signal 9" in supervisor.log()
        wait_for(lambda: len(supervisor.pids("worker")) == 2, 15, "the worker started again")
        wait_for(supervisor.ready, 30, "ready again")

        second = send(client, url, "the restarted worker answers this")
        wait_for(lambda: status(client, url, second)["done"], 30, "the new reply")
        assert status(client, url, second)["status"] == "succeeded"


def test_a_killed_valkey_is_restarted_and_work_goes_on(supervisor):
    url = supervisor.url
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        sign_up(client, url)
        first = send(client, url, "before")
        wait_for(lambda: status(client, url, first)["done"], 30, "the first reply")
        [valkey_pid] = supervisor.pids("valkey")
        os.kill(valkey_pid, signal.SIGKILL)
        wait_for(lambda: len(supervisor.pids("valkey")) == 2, 15, "Valkey started again")
        assert client.get(f"{url}/chat/").status_code == 200
        wait_for(supervisor.ready, 30, "ready again")
        second = send(client, url, "after")
        wait_for(lambda: status(client, url, second)["done"], 30, "the reply after the restart")
        assert status(client, url, second)["status"] == "succeeded"
        assert status(client, url, first)["status"] == "succeeded"  # the earlier reply is still there


def test_ctrl_c_on_make_run_stops_everything_with_status_0(tmp_path):
    """Ctrl-C typed in a terminal (a pty): `make run` ends with 0, no traceback, no process left."""
    port = free_port()
    env = supervisor_env(tmp_path / "instance", port)
    pid, fd = pty.fork()
    if pid == 0:  # the child: `make run` in the terminal's foreground, as a person starts it
        os.chdir(PROJECT_ROOT)
        os.execvpe("make", ["make", "run"], env)
    output = bytearray()

    def read(until: float) -> None:
        while time.monotonic() < until:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                output.extend(chunk)
                return

    def up() -> bool:
        read(time.monotonic() + 0.1)
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 120, "make run serving")
        text = output.decode(errors="replace")
        children = [int(p) for _name, p in STARTED_RE.findall(text)] + [int(p) for p in GUNICORN_CHILD_RE.findall(text)]
        assert len(children) >= 3, text
        os.write(fd, b"\x03")  # Ctrl-C, through the terminal driver: SIGINT to the foreground group
        deadline = time.monotonic() + 60
        finished = None
        while finished is None and time.monotonic() < deadline:
            read(time.monotonic() + 0.2)
            done_pid, status = os.waitpid(pid, os.WNOHANG)
            if done_pid:
                finished = os.waitstatus_to_exitcode(status)
        while True:  # the rest of the output
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                break
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            output.extend(chunk)
    finally:
        os.close(fd)
    text = output.decode(errors="replace")
    assert finished == 0, text[-3000:]
    assert "Traceback" not in text and "make: ***" not in text and "Error" not in text, text[-3000:]
    assert "[switchboard] stopped" in text
    left = [child for child in children if _exists(child)]
    assert not left, f"processes left behind: {left}"


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone in all but name (its parent, now gone too, was reaped by init).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False
