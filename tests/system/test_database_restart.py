"""PostgreSQL stopped and started again under `make run`'s stack (issue 22, defect 3).

20 chats stream while the database is down for a few seconds. A reply whose text had fully
streamed ends `succeeded` with its text and usage once the database is back (the worker's final
write waits the outage out), any other ends with a reason that names the database; nothing stays
running past the outage plus a sweep, and every reserved token estimate is settled. `/v1` calls,
streaming or not, in flight or made during the outage, get their answer or a clear 503, never a hang.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack

import httpx
import psycopg
import pytest
import redis

from bench.postgres import Unavailable, restartable_cluster
from tests.support.supervision import NO_KEEPALIVE, Supervisor, send, sign_up, status
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

CHATS, USERS = 20, 4
OUTAGE_SECONDS = 6  # longer than a reply takes to stream (160 words at ECHO_DELAY 0.05 s)
SWEEP_SECONDS = 1  # WORKER_SWEEP_INTERVAL in the supervisor's settings
PASSWORD = "correct horse battery"
API_TIMEOUT = 60


@pytest.fixture
def cluster():
    with ExitStack() as stack:
        try:
            running = stack.enter_context(restartable_cluster(max_connections=100))
        except Unavailable as exc:
            pytest.skip(f"no PostgreSQL of its own to restart ({exc})")
        yield running


def prompt(name: str) -> str:
    return f"{name}: " + " ".join(f"{name}-word{n}" for n in range(160))


def api_running(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        query = "SELECT count(*) FROM generations WHERE status = 'running' AND message_id IS NULL"
        return connection.execute(query).fetchone()[0]


def call_v1(url: str, token: str, text: str, stream: bool) -> tuple[str, str]:
    """("answer", text) or ("503", message); anything else (a hang, a cut stream, a 500) fails the test."""
    body = {"model": "echo", "messages": [{"role": "user", "content": text}], "stream": stream}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=API_TIMEOUT, limits=NO_KEEPALIVE) as client:
        if not stream:
            response = client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
            if response.status_code == 200:
                return "answer", response.json()["choices"][0]["message"]["content"]
            assert response.status_code == 503, response.text[:300]
            return "503", response.json()["error"]["message"]
        with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as response:
            if response.status_code != 200:
                response.read()
                assert response.status_code == 503, response.text[:300]
                return "503", response.json()["error"]["message"]
            pieces, events = [], [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        assert events and events[-1] == "[DONE]", f"the stream ended without [DONE]: {events[-3:]}"
        for event in map(json.loads, events[:-1]):
            if "error" in event:
                assert event["error"]["code"] == 503, event
                return "503", event["error"]["message"]
            pieces += [choice["delta"].get("content") or "" for choice in event.get("choices", [])]
        return "answer", "".join(pieces)


def test_a_postgresql_restart_mislabels_nothing_and_hangs_nothing(tmp_path, cluster):
    supervisor = Supervisor(
        tmp_path,
        # A short final-write bound: replies that finish early in the outage give up waiting and leave
        # their record in Redis for the sweep; later ones are saved by the worker's own retries. Both paths run.
        {"DATABASE_URL": cluster.url, "DEFAULT_TOKENS_PER_DAY": "10000000", "FINAL_WRITE_RETRY_SECONDS": "3"},
    )
    clients = [httpx.Client(timeout=30, limits=NO_KEEPALIVE) for _ in range(USERS)]
    try:
        url = supervisor.url
        for index, client in enumerate(clients):
            sign_up(client, url, f"user{index}")
        token = clients[0].post(f"{url}/api/token/", json={"username": "user0", "password": PASSWORD}).json()["access"]
        chats = {send(clients[i % USERS], url, prompt(f"chat{i}")): prompt(f"chat{i}") for i in range(CHATS)}
        wait_for(
            lambda: all(status(clients[i % USERS], url, g)["text"] for i, g in enumerate(chats)), 30, "chats streaming"
        )

        api_results = []  # (when, expected text, outcome, its text or message, seconds)

        def api_call(when: str, text: str, stream: bool) -> None:
            started = time.monotonic()
            outcome, detail = call_v1(url, token, text, stream)
            api_results.append((when, text, outcome, detail, time.monotonic() - started))

        in_flight = [
            threading.Thread(target=api_call, args=("in flight", prompt(f"api{n}"), n % 2 == 1)) for n in range(4)
        ]
        for thread in in_flight:
            thread.start()
        wait_for(lambda: api_running(cluster.url) == len(in_flight), 20, "the API calls under way too")

        cluster.stop()
        stopped_at = time.monotonic()
        # While the database is down: pages and the API say so plainly, at once.
        page = clients[1].get(f"{url}/chat/")
        assert page.status_code == 503 and "database is unavailable" in page.text, page.text[:300]
        for stream in (False, True):
            api_call("during the outage", prompt("down"), stream)
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))  # the outage itself
        cluster.start()
        back_at = time.monotonic()

        # Nothing shows running for longer than the outage plus a sweep (and the final write's backoff, 2 s at most).
        def all_done():
            return all(status(clients[i % USERS], url, g)["done"] for i, g in enumerate(chats))

        wait_for(all_done, SWEEP_SECONDS + 2 + 10, "every chat finished after the database returned", interval=0.2)
        print(f"\nevery chat finished {time.monotonic() - back_at:.1f} s after PostgreSQL was back")
        log = supervisor.log()
        kept, saved = log.count("its final record waits in Redis"), log.count("saved the final record its worker kept")
        print(f"final records left for the sweep: {kept}, saved by the sweep: {saved}; the rest saved by the worker")
        assert kept == saved, "every final record left in Redis is saved by the sweep"
        for thread in in_flight:
            thread.join(API_TIMEOUT + 10)
            assert not thread.is_alive(), "a /v1 call hung"

        with psycopg.connect(cluster.url) as connection:
            rows = connection.execute(
                "SELECT id, status, text, error, error_code, input_tokens, output_tokens FROM generations"
            ).fetchall()
        outcomes = {"succeeded": 0, "failed": 0}
        for generation_id, state, text, error, code, input_tokens, output_tokens in rows:
            if generation_id not in chats:
                continue
            if state == "succeeded":
                assert text.endswith(chats[generation_id]) and input_tokens and output_tokens, (generation_id, text)
            else:
                assert state == "failed" and "database" in (error or ""), (generation_id, state, code, error)
            outcomes[state] += 1
        print(
            f"chats: {outcomes}; /v1: {[(when, outcome, f'{seconds:.1f} s') for when, _t, outcome, _d, seconds in api_results]}"
        )
        for when, text, outcome, detail, _seconds in api_results:
            if outcome == "answer":
                assert detail.endswith(text), (when, detail[-80:])
            else:
                assert "database is unavailable" in detail.lower(), (when, detail)
        assert sum(1 for when, *_rest in api_results if when == "during the outage") == 2
        assert all(outcome == "503" for when, _t, outcome, *_r in api_results if when == "during the outage")

        # Every reservation settled: no estimate left, the day's count is the tokens really used.
        valkey = redis.Redis(unix_socket_path=str(tmp_path / "instance" / "valkey.sock"))
        wait_for(lambda: not valkey.keys("switchboard:limits:reservation:*"), 15, "every reservation settled")
        with psycopg.connect(cluster.url) as connection:
            used = dict(
                connection.execute(
                    "SELECT user_id, sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) FROM generations "
                    "WHERE status != 'queued' GROUP BY user_id"
                ).fetchall()
            )
        counted = {int(key.split(b":")[2]): int(valkey.get(key)) for key in valkey.keys("switchboard:limits:*:tpd:*")}
        assert counted == {user: int(total) for user, total in used.items()}, (counted, used)
    finally:
        for client in clients:
            client.close()
        supervisor.stop()
