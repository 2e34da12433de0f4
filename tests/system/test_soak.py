"""Soak: 50 chats × 5 turns at once through gunicorn as `make run` starts it, one real worker and Valkey.

On SQLite (the default a team starts with) and on PostgreSQL (TEST_DATABASE_URL, or a throwaway
cluster as the scale-out test starts one).
Every message must be saved exactly once, every reply must finish exactly once, and no
response may be a 5xx.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.browsing import REPLY_RE, RESENT_FORMS, Recorder, composer, post_form, sign_up
from tests.support.stack import Stack
from webapp.config import normalize_database_url

pytestmark = pytest.mark.slow

CHATS, TURNS, USERS = 50, 5, 10
DEADLINE_SECONDS = 240


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
    action, csrf, submission = composer((await client.get(url + page_path)).text)
    response = await post_form(
        client, url + action, {"csrf_token": csrf, "submission_token": submission, "content": content}
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
            await sign_up(client, url, f"soak{index}")
        paths = await asyncio.gather(*(_chat(clients[i % USERS], url, i, deadline) for i in range(CHATS)))
        return paths, recorder
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def _soak_on(database_url: str, redis_url: str, tmp_path: Path) -> None:
    stack = Stack(tmp_path, database_url, redis_url, env={"ECHO_DELAY": 0.01})
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
        assert "database is locked" not in stack.log("web0") + stack.log("worker0")
    finally:
        stack.stop()


def test_soak_on_sqlite(tmp_path, redis_url):
    _soak_on(f"sqlite:///{tmp_path / 'soak.db'}", redis_url, tmp_path)


def test_soak_on_postgresql(tmp_path, redis_url, postgres_url):
    _soak_on(postgres_url, redis_url, tmp_path)
