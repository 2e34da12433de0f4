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
import re
import time

import httpx
import pytest
import redis

from tests.support.browsing import REPLY_RE, RESENT_FORMS, STREAMING_RE, composer, get_page, post_form, sign_up
from tests.support.sse import aiter_events
from tests.support.stack import Stack

pytestmark = pytest.mark.slow

CHATS = 100
USERS = 10  # each user runs CHATS / USERS conversations at once


@pytest.fixture
def cluster(request, tmp_path, postgres_url, redis_url):
    # Events: replies slow enough (about 3 s) to be read, hung up on and resumed while they run.
    events = getattr(request.node, "callspec", None) and request.node.callspec.params.get("transport") == "events"
    cluster = Stack(
        tmp_path,
        postgres_url,
        redis_url,
        servers=2,
        web_processes=1,
        workers=2,
        concurrency=50,
        env={"DEFAULT_LLM_MODEL": "echo", "ECHO_DELAY": 0.2 if events else 0.01},
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


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

    action, csrf, token = composer(await get_page(client, f"{base()}/chat/"))
    response = await post_form(
        client, f"{base()}{action}", {"csrf_token": csrf, "submission_token": token, "content": content}
    )
    assert response.status_code == 302, response.text[:500]
    page = await get_page(client, base() + response.headers["location"].split("#")[0])
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
        received = 0
        async with client.stream("GET", f"{url}{events_url}", headers={"Last-Event-ID": str(cursor)}) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            async for name, data, event_id in aiter_events(response):
                if name == "text":
                    pieces.append(json.loads(data)["text"])
                    assert int(event_id) == cursor + len(pieces[-1])
                    cursor, received = int(event_id), received + 1
                elif name in ENDINGS:
                    status = ENDINGS[name]
                    break
                if received == 2:
                    break  # hang up mid-reply: the next connection goes to the other web process
    return pieces, served_by, status


async def _run_chats(web_urls: list[str], deadline: float, events: bool = False) -> list[dict]:
    clients = [httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) for _ in range(USERS)]
    try:
        for index, client in enumerate(clients):  # sign up through the real form, on alternating processes
            url = web_urls[index % 2]
            await sign_up(client, url, f"scale{index}")
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
        results = pool.submit(asyncio.run, _run_chats(cluster.urls, deadline, transport == "events")).result()
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
    assert set(served) == set(cluster.urls), served[:10]
    if transport == "events":  # many replies were picked up again on the other process in mid-reply
        # (How many depends on the machine's load: a reply that ends before its page connects has nothing to resume.)
        resumed = [r for r in results if len(set(r["served_by"])) == 2]
        print(f"replies resumed on the other web process: {len(resumed)}")
        assert len(resumed) >= CHATS // 20, [r["served_by"] for r in results][:5]

    # Each job ran once, and both workers took a share.
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry

    connection = redis.Redis.from_url(cluster.env["REDIS_URL"])
    queue = Queue(cluster.queue, connection=connection)
    assert FailedJobRegistry(queue=queue).count == 0
    counts = {w.name: w.successful_job_count for w in Worker.all(queue=queue)}
    assert sum(counts.values()) == CHATS, counts
    assert all(count > 0 for count in counts.values()), counts
