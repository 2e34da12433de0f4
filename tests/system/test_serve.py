"""``make run``'s supervisor (supervisor.py): processes that die are started again, the web stays up, and
Ctrl-C stops everything with exit status 0 and nothing left behind."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.stack import GUNICORN_CHILD_RE
from tests.support.supervision import (
    ALIVE_TTL,
    NO_KEEPALIVE,
    STARTED_RE,
    Supervisor,
    send,
    sign_up,
    status,
    supervisor_env,
)
from tests.support.waiting import wait_for
from webapp.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def supervisor(tmp_path):
    running = Supervisor(tmp_path)
    yield running
    running.stop()


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
