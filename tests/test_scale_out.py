"""Scale-out: two web processes and two workers sharing one PostgreSQL and one Redis.

A hundred chats run across them; every poll of a reply goes to the other web
process than the one before. Each reply must arrive complete and exactly once,
whichever process served each piece, and each job must run once. The same again
over server-sent events: each reader hangs up every two pieces and resumes on
the other web process with Last-Event-ID.

PostgreSQL: TEST_DATABASE_URL when set (the test makes and drops its own
database there), else a throwaway cluster started here with Debian's
postgresql binaries (run as the ``postgres`` user, like ``.ci/run``), else skip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis

from bench.postgres import Unavailable, throwaway_cluster
from tests.waiting import wait_for
from webapp.config import ENV_KEYS
from webapp.paths import PROJECT_ROOT
from webapp.serve import gunicorn_command

pytestmark = pytest.mark.slow

CHATS = 100
USERS = 10  # each user runs CHATS / USERS conversations at once
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
COMPOSER_RE = re.compile(r'<form class="composer"[^>]*? action="([^"]+)"([^>]*>.*?)</form>', re.S)
SUBMISSION_RE = re.compile(r'name="submission_token"[^>]*value="([^"]*)"')
REPLY_RE = re.compile(
    r'data-generation-id="(\d+)"\s+data-status="(\w+)"\s+data-cursor="(\d+)"\s+'
    r'data-status-url="([^"]+)"'
)
STREAMING_RE = re.compile(r'data-generation-id="%s".*?<div class="content streaming">(.*?)</div>', re.S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- PostgreSQL ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres_server():
    """TEST_DATABASE_URL, else a throwaway cluster (as .ci/run starts one), else skip."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    with ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_cluster(max_connections=200))
        except Unavailable as exc:
            pytest.skip(f"no PostgreSQL: set TEST_DATABASE_URL ({exc})")
        yield url


@pytest.fixture
def postgres_url(postgres_server):
    """A database of its own on that server, dropped afterwards (other tests use the default one)."""
    import psycopg

    server = postgres_server.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://")
    name = f"sb_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _old = server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the processes ------------------------------------------------------------------------------
class Cluster:
    def __init__(self, tmp_path: Path, database_url: str, redis_url: str, echo_delay: float = 0.01):
        self.tmp = tmp_path
        self.queue = f"scale-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
        env.update(
            {
                # Every host gets the same settings; SECRET_KEY must match so any web process accepts any session.
                "SWITCHBOARD_INSTANCE_PATH": str(tmp_path / "instance"),
                "SECRET_KEY": "scale-out-test-secret-key-0123456789",
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "RQ_QUEUE_NAME": self.queue,
                "DEFAULT_LLM_MODEL": "echo",
                "ECHO_DELAY": str(echo_delay),
                "DEFAULT_REQUESTS_PER_MINUTE": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.web_urls: list[str] = []

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        proc = subprocess.Popen(
            args, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def start(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=PROJECT_ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        for index in range(2):
            port = free_port()
            self._start(
                f"web{index}",
                gunicorn_command(f"127.0.0.1:{port}", 1, access_log=str(self.tmp / f"access{index}.log")),
            )
            self.web_urls.append(f"http://127.0.0.1:{port}")
        for index in range(2):
            self._start(
                f"worker{index}",
                [
                    sys.executable,
                    "-m",
                    "workers",
                    "--concurrency",
                    "50",
                    "--queue",
                    self.queue,
                    "--name",
                    f"{self.queue}-w{index}",
                ],
            )

        def web_up(url):
            try:
                return httpx.get(f"{url}/auth/login", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        for url in self.web_urls:
            wait_for(lambda: web_up(url) or self._check_alive(), 60, f"web at {url}")
        from rq import Queue, Worker

        connection = redis.Redis.from_url(self.env["REDIS_URL"])
        queue = Queue(self.queue, connection=connection)
        wait_for(
            lambda: Worker.count(connection=connection, queue=queue) >= 2 or self._check_alive(),
            60,
            "two workers registered",
        )

    def _check_alive(self) -> bool:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
        return False

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for _name, proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for _name, proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(5)


@pytest.fixture
def cluster(request, tmp_path, postgres_url, redis_url):
    # Events: replies slow enough (about 3 s) to be read, hung up on and resumed while they run.
    events = getattr(request.node, "callspec", None) and request.node.callspec.params.get("transport") == "events"
    cluster = Cluster(tmp_path, postgres_url, redis_url, echo_delay=0.2 if events else 0.01)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# -- a browser, roughly ----------------------------------------------------------------------------
async def _page(client: httpx.AsyncClient, url: str) -> str:
    response = await client.get(url)
    assert response.status_code == 200, f"GET {url}: {response.status_code}"
    return response.text


# How often post_form sent a form again after a cut connection (the load tests print it; the soak expects 0).
RESENT_FORMS = Counter()


async def post_form(client: httpx.AsyncClient, url: str, data: dict) -> httpx.Response:
    """POST a chat form; on a connection cut before the answer, send the same form once more, as a browser's
    user would. Its one-time submission token makes the second send find the first one's message, if any."""
    try:
        return await client.post(url, data=data)
    except (httpx.ReadError, httpx.RemoteProtocolError):
        RESENT_FORMS["resent"] += 1
        return await client.post(url, data=data)


def _composer(page: str) -> tuple[str, str, str]:
    form = COMPOSER_RE.search(page)
    return form.group(1), CSRF_RE.search(form.group(2)).group(1), SUBMISSION_RE.search(form.group(2)).group(1)


async def _chat(
    client: httpx.AsyncClient, web_urls: list[str], first: int, content: str, deadline: float, events: bool = False
) -> dict:
    """Open a new chat, send ``content`` and follow the reply, each request to the next web process in turn
    (polling the status endpoint, or with ``events`` reading server-sent events)."""
    turn = first

    def base() -> str:
        nonlocal turn
        turn += 1
        return web_urls[turn % len(web_urls)]

    action, csrf, token = _composer(await _page(client, f"{base()}/chat/"))
    response = await post_form(
        client, f"{base()}{action}", {"csrf_token": csrf, "submission_token": token, "content": content}
    )
    assert response.status_code == 302, response.text[:500]
    page = await _page(client, base() + response.headers["location"].split("#")[0])
    generation_id, status, cursor, status_url = REPLY_RE.findall(page)[-1]
    shown = re.search(STREAMING_RE.pattern % generation_id, page, re.S)
    pieces = [html.unescape(shown.group(1))] if shown and shown.group(1) else []
    cursor, served_by = int(cursor), []
    if status not in ("queued", "running"):  # finished before the page was rendered: read it all once
        pieces, cursor = [], 0
    if events:
        more, served_by, status = await _follow_events(client, base, status_url, cursor, deadline)
        return {"generation_id": int(generation_id), "pieces": pieces + more, "status": status, "served_by": served_by}
    data = {"done": False}
    while not data["done"]:
        assert time.monotonic() < deadline, f"generation {generation_id} did not finish in time"
        url = base()
        served_by.append(url)
        response = await client.get(
            f"{url}{status_url}", params={"cursor": cursor, "wait": 5}, headers={"Accept": "application/json"}
        )
        assert response.status_code == 200, response.text[:500]
        data = response.json()
        if data["text"]:
            pieces.append(data["text"])
        cursor = data["cursor"]
    return {"generation_id": int(generation_id), "pieces": pieces, "status": data["status"], "served_by": served_by}


ENDINGS = {"done": "succeeded", "failed": "failed", "stopped": "cancelled"}


async def _follow_events(client: httpx.AsyncClient, base, status_url: str, cursor: int, deadline: float):
    """Read the reply's events from ``cursor``, hanging up after every two pieces of text and resuming
    (Last-Event-ID) on the next web process; returns (pieces, web processes used, final status)."""
    events_url = status_url.rsplit("/", 1)[0] + "/events"
    pieces, served_by, status = [], [], None
    while status is None:
        assert time.monotonic() < deadline, f"{events_url} did not end in time"
        url = base()
        served_by.append(url)
        received, event = 0, {}
        async with client.stream("GET", f"{url}{events_url}", headers={"Last-Event-ID": str(cursor)}) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line:
                    if not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        event[name] = value
                    continue
                if event.get("event") == "text":
                    pieces.append(json.loads(event["data"])["text"])
                    assert int(event["id"]) == cursor + len(pieces[-1])
                    cursor, received = int(event["id"]), received + 1
                elif event.get("event") in ENDINGS:
                    status = ENDINGS[event["event"]]
                    break
                event = {}
                if received == 2:
                    break  # hang up mid-reply: the next connection goes to the other web process
    return pieces, served_by, status


async def _run_chats(web_urls: list[str], deadline: float, events: bool = False) -> list[dict]:
    clients = [httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) for _ in range(USERS)]
    try:
        for index, client in enumerate(clients):  # sign up through the real form, on alternating processes
            url = web_urls[index % 2]
            csrf = CSRF_RE.search(await _page(client, f"{url}/auth/signup")).group(1)
            response = await client.post(
                f"{url}/auth/signup",
                data={
                    "username": f"scale{index}",
                    "password": "scale-out password",
                    "confirm": "scale-out password",
                    "csrf_token": csrf,
                },
            )
            assert response.status_code == 302, response.text[:500]
        chats = [
            _chat(
                clients[index % USERS],
                web_urls,
                index,
                f"chat {index} says " + " ".join(f"w{index}-{n}" for n in range(12)),
                deadline,
                events,
            )
            for index in range(CHATS)
        ]
        return await asyncio.gather(*chats)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


@pytest.mark.parametrize("transport", ["polling", "events"])
def test_hundred_chats_across_two_web_processes_and_two_workers(cluster, transport):
    deadline = time.monotonic() + 45
    RESENT_FORMS.clear()
    # In a thread of its own: after the browser tests, Playwright keeps an event loop running here.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        results = pool.submit(asyncio.run, _run_chats(cluster.web_urls, deadline, transport == "events")).result()
    assert len(results) == CHATS
    print(f"\nforms sent again after a cut connection: {RESENT_FORMS['resent']}")

    import psycopg

    url = cluster.env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        rows = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT g.id, g.status, g.text, g.attempts, m.content FROM generations g JOIN messages m ON m.id = g.message_id"
            )
        }
    assert len(rows) == CHATS, "one generation per chat"
    for result in results:
        status, text, attempts, content = rows[result["generation_id"]]
        received = "".join(result["pieces"])
        # Complete and exactly once: the pieces the page got, in order, are the saved reply, no more, no less.
        assert result["status"] == status == "succeeded", (result, status)
        assert received == text, f"generation {result['generation_id']}: page got {received!r}, saved {text!r}"
        assert content in text
        assert attempts == 1
    # The polls really were spread over both web processes.
    served = [url for r in results for url in r["served_by"]]
    assert set(served) == set(cluster.web_urls), served[:10]
    if transport == "events":  # many replies were picked up again on the other process in mid-reply
        resumed = [r for r in results if len(set(r["served_by"])) == 2]
        assert len(resumed) >= CHATS // 4, [r["served_by"] for r in results][:5]

    # Each job ran once, and both workers took a share.
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry

    connection = redis.Redis.from_url(cluster.env["REDIS_URL"])
    queue = Queue(cluster.queue, connection=connection)
    assert FailedJobRegistry(queue=queue).count == 0
    counts = {w.name: w.successful_job_count for w in Worker.all(queue=queue)}
    assert sum(counts.values()) == CHATS, counts
    assert all(count > 0 for count in counts.values()), counts
