"""Soak: 50 chats × 5 turns at once through gunicorn as `make run` starts it, one real worker and Valkey.

On SQLite (the default a team starts with) and on PostgreSQL (TEST_DATABASE_URL, or a throwaway
cluster as the scale-out test starts one).
Every message must be saved exactly once, every reply must finish exactly once, and no
response may be a 5xx.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.test_scale_out import (
    COMPOSER_RE,
    CSRF_RE,
    REPLY_RE,
    RESENT_FORMS,
    SUBMISSION_RE,
    free_port,
    post_form,
    postgres_server,
    postgres_url,
)
from tests.waiting import wait_for
from webapp.config import ENV_KEYS, normalize_database_url
from webapp.paths import PROJECT_ROOT
from webapp.serve import gunicorn_command

pytestmark = pytest.mark.slow
__all__ = ["postgres_server", "postgres_url"]  # fixtures used below

CHATS, TURNS, USERS = 50, 5, 10
DEADLINE_SECONDS = 240


class Stack:
    """gunicorn (2 processes × 64 threads, as `make run`) and one `python -m workers` (50 threads)."""

    def __init__(self, tmp: Path, database_url: str, redis_url: str, web_workers: int = 2, worker: bool = True):
        self.tmp = tmp
        self.web_workers, self.worker = web_workers, worker
        self.queue = f"soak-{uuid.uuid4().hex[:8]}"
        self.env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
        self.env.update(
            {
                "SWITCHBOARD_INSTANCE_PATH": str(tmp / "instance"),
                "SECRET_KEY": "soak-test-secret-key-0123456789",
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "RQ_QUEUE_NAME": self.queue,
                "ECHO_DELAY": "0.01",
                "DEFAULT_REQUESTS_PER_MINUTE": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=PROJECT_ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._start(
            "web",
            gunicorn_command(f"127.0.0.1:{self.port}", self.web_workers, access_log=str(self.tmp / "access.log")),
        )
        if self.worker:
            self._start("worker", [sys.executable, "-m", "workers", "--queue", self.queue])

        def up():
            for name, proc in self.procs:
                assert proc.poll() is None, f"{name} exited:\n{self.log(name)[-3000:]}"
            try:
                # /readyz needs a live worker; /healthz only the web
                return httpx.get(f"{self.url}/{'readyz' if self.worker else 'healthz'}", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "web and worker ready")

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "wb")
        self.procs.append(
            (
                name,
                subprocess.Popen(
                    args, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                ),
            )
        )
        log.close()

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for _name, proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for _name, proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(5)


class Recorder:
    """Every response's status, so no 5xx can hide behind a retry."""

    def __init__(self):
        self.statuses: Counter = Counter()
        self.server_errors: list[str] = []

    async def __call__(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            await response.aread()
            self.server_errors.append(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:200]}"
            )


async def _follow(client: httpx.AsyncClient, url: str, page: str, deadline: float) -> None:
    generation_id, status, cursor, status_url = REPLY_RE.findall(page)[-1]
    done = status not in ("queued", "running")
    while not done:
        assert time.monotonic() < deadline, f"generation {generation_id} did not finish in time"
        response = await client.get(
            url + status_url, params={"cursor": cursor, "wait": 5}, headers={"Accept": "application/json"}
        )
        assert response.status_code == 200, response.text[:300]
        data = response.json()
        cursor, done = data["cursor"], data["done"]


async def _post_turn(client: httpx.AsyncClient, url: str, page_path: str, content: str) -> str:
    form = COMPOSER_RE.search((await client.get(url + page_path)).text)
    response = await post_form(
        client,
        url + form.group(1),
        {
            "csrf_token": CSRF_RE.search(form.group(2)).group(1),
            "submission_token": SUBMISSION_RE.search(form.group(2)).group(1),
            "content": content,
        },
    )
    assert response.status_code == 302, f"{response.status_code}: {response.text[:300]}"
    return response.headers["location"].split("#")[0]


async def _chat(client: httpx.AsyncClient, url: str, index: int, deadline: float) -> str:
    path = "/chat/"
    for turn in range(TURNS):
        path = await _post_turn(
            client, url, path, f"soak chat {index} turn {turn}: " + " ".join(f"w{index}-{turn}-{n}" for n in range(8))
        )
        page = await client.get(url + path)
        assert page.status_code == 200
        await _follow(client, url, page.text, deadline)
    return path


async def _soak(url: str) -> tuple[list[str], Recorder]:
    recorder = Recorder()
    deadline = time.monotonic() + DEADLINE_SECONDS
    # No keep-alive: gunicorn closes idle connections after 2 s, and a request racing that close fails.
    clients = [
        httpx.AsyncClient(
            timeout=60, event_hooks={"response": [recorder]}, limits=httpx.Limits(max_keepalive_connections=0)
        )
        for _ in range(USERS)
    ]
    try:
        for index, client in enumerate(clients):
            csrf = CSRF_RE.search((await client.get(f"{url}/auth/signup")).text).group(1)
            response = await client.post(
                f"{url}/auth/signup",
                data={
                    "username": f"soak{index}",
                    "password": "soak test password",
                    "confirm": "soak test password",
                    "csrf_token": csrf,
                },
            )
            assert response.status_code == 302, response.text[:300]
        paths = await asyncio.gather(*(_chat(clients[i % USERS], url, i, deadline) for i in range(CHATS)))
        return paths, recorder
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def _soak_on(database_url: str, redis_url: str, tmp_path: Path) -> None:
    stack = Stack(tmp_path, database_url, redis_url)
    try:
        stack.start()
        started = time.monotonic()
        RESENT_FORMS.clear()
        # In a thread of its own: after the browser tests, Playwright keeps an event loop running here.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            paths, recorder = pool.submit(asyncio.run, _soak(stack.url)).result()
        seconds = time.monotonic() - started
        assert not recorder.server_errors, recorder.server_errors[:10]

        engine = create_engine(normalize_database_url(database_url))
        with engine.connect() as connection:
            messages = connection.execute(
                text(
                    "SELECT m.conversation_id, m.content, count(g.id), min(g.status), max(g.status), "
                    "min(length(g.text)) FROM messages m LEFT JOIN generations g ON g.message_id = m.id "
                    "GROUP BY m.id, m.conversation_id, m.content"
                )
            ).all()
            orphans = connection.execute(text("SELECT count(*) FROM generations WHERE message_id IS NULL")).scalar()
        engine.dispose()
        sent = {f"soak chat {i} turn {t}" for i in range(CHATS) for t in range(TURNS)}
        saved = Counter(content.split(":")[0] for _c, content, *_rest in messages)
        assert set(saved) == sent and all(count == 1 for count in saved.values()), "each message saved once"
        assert len({conversation for conversation, *_rest in messages}) == CHATS == len(set(paths))
        for _conversation, content, replies, lowest, highest, shortest in messages:
            assert replies == 1, f"{content}: {replies} replies"
            assert lowest == highest == "succeeded", f"{content}: {lowest}/{highest}"
            assert shortest and shortest > len(content) // 2, content
        assert orphans == 0
        print(
            f"\nsoak: {len(messages)} messages, {len(messages)} replies, "
            f"{sum(c for s, c in recorder.statuses.items() if s >= 500)} 5xx, "
            f"{sum(recorder.statuses.values())} requests {dict(recorder.statuses)}, {seconds:.1f} s, "
            f"{RESENT_FORMS['resent']} forms sent again after a cut connection"
        )
        # A connection cut before its answer (gunicorn's keep-alive timer, WEB_KEEPALIVE) must not happen here.
        assert RESENT_FORMS["resent"] == 0
        assert "database is locked" not in stack.log("web") + stack.log("worker")
    finally:
        stack.stop()


def test_soak_on_sqlite(tmp_path, redis_url):
    _soak_on(f"sqlite:///{tmp_path / 'soak.db'}", redis_url, tmp_path)


def test_soak_on_postgresql(tmp_path, redis_url, postgres_url):
    _soak_on(postgres_url, redis_url, tmp_path)
