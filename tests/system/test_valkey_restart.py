"""Valkey killed under `make run`'s supervision and started again (issue 23, item 4): every reply event
stream opened afterwards, in every web process, ends with `done` (each process's one pub/sub reader
reconnects by itself, not at the first stream's expense)."""

from __future__ import annotations

import concurrent.futures
import os
import signal

import httpx
import pytest

from tests.support.supervision import NO_KEEPALIVE, Supervisor, send, sign_up
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

STREAMS = 8  # each round: enough for both web processes (WEB_WORKERS=2) to serve several
# 100 words at ECHO_DELAY 0.05 s: every reply is still running when its stream opens (which then subscribes).


def follow_events(url: str, cookies, generation_id: int) -> list[str]:
    """The events' names until an ending one (done, failed, stopped) or until the server closes the stream."""
    names = []
    with httpx.Client(timeout=30, cookies=cookies, limits=NO_KEEPALIVE) as client:
        with client.stream("GET", f"{url}/chat/generations/{generation_id}/events") as response:
            assert response.status_code == 200, response.status_code
            for line in response.iter_lines():
                if line.startswith("event: "):
                    names.append(line[7:])
                    if names[-1] in ("done", "failed", "stopped"):
                        break
    return names


def round_of_streams(client: httpx.Client, url: str, label: str) -> list[list[str]]:
    generations = [send(client, url, f"{label} {n}: " + " ".join(f"w{n}" for _ in range(100))) for n in range(STREAMS)]
    with concurrent.futures.ThreadPoolExecutor(STREAMS) as pool:
        return list(pool.map(lambda g: follow_events(url, client.cookies, g), generations))


@pytest.fixture
def supervisor(tmp_path):
    running = Supervisor(tmp_path)
    yield running
    running.stop()


def test_streams_after_a_valkey_restart_end_with_done(supervisor):
    url = supervisor.url
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        sign_up(client, url)
        before = round_of_streams(client, url, "before")  # every web process now has its pub/sub reader
        assert all(names[-1] == "done" for names in before), before

        [valkey_pid] = supervisor.pids("valkey")
        os.kill(valkey_pid, signal.SIGKILL)
        wait_for(lambda: len(supervisor.pids("valkey")) == 2, 15, "Valkey started again")
        wait_for(supervisor.ready, 30, "ready again")

        after = round_of_streams(client, url, "after")
        endings = [names[-1] if names else "nothing" for names in after]
        assert endings == ["done"] * STREAMS, after
        log = supervisor.log()
        assert "event stream ended" not in log, log[-2000:]
