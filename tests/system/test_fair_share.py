"""Fair order and provider caps through real gunicorn and real workers (concurrency 4) and a fake
OpenAI-format provider whose replies take 200 ms (bench.stack: Valkey, SQLite, provider, web, worker)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import signal
from contextlib import ExitStack
from datetime import UTC

import httpx
import pytest
from sqlalchemy import select

from bench.stack import Stack
from bench.users import SimUser, Stats
from tests.support.postgres import own_database
from tests.support.stack import stop_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

SLOW = "fair ttft=0.2 tps=0 tokens=2"  # the fake provider answers in 200 ms
DEPTH = 2  # FAIR_SHARE_DEPTH: the longest run of one user's starts while others wait


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request):
    with ExitStack() as resources:
        database_url = None  # SQLite: a file in the stack's temp dir
        if request.param == "postgresql":
            database_url = resources.enter_context(own_database(request.getfixturevalue("postgres_server")))
        settings = {"FAIR_SHARE_DEPTH": str(DEPTH)}
        stack = resources.enter_context(
            Stack(web_workers=1, worker_concurrency=4, settings=settings, database_url=database_url)
        )
        os.environ.update(stack.env)  # create_app() below talks to the stack's database
        from webapp import create_app

        stack.app = create_app()
        yield stack
        from webapp.extensions import db

        with stack.app.app_context():
            db.engine.dispose()  # close its pooled connections before the database is dropped


def make_api_user(stack, name: str) -> tuple[int, str]:
    from webapp.accounts import create_user
    from webapp.accounts.api_keys import create_key
    from webapp.extensions import db

    with stack.app.app_context():
        user = create_user(name, "fair share password 1")
        db.session.flush()
        _key, raw = create_key(user, "flood")
        db.session.commit()
        user_id = user.id
        db.session.remove()
    return user_id, raw


def generations(stack, user_ids=None):
    from webapp.extensions import db
    from webapp.models import Generation

    with stack.app.app_context():
        query = select(Generation).order_by(Generation.id)
        if user_ids is not None:
            query = query.where(Generation.user_id.in_(user_ids))
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        db.session.remove()
    return rows


async def api_calls(stack, key: str, count: int, model: str = "gpt-4o", prompt: str = SLOW) -> list[int]:
    limits = httpx.Limits(max_connections=count + 10)  # all at once (httpx keeps 100 by default)
    async with httpx.AsyncClient(base_url=stack.web_url, timeout=120, limits=limits) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": model, "messages": [{"role": "user", "content": prompt}]},
                )
                for _ in range(count)
            )
        )
    return [r.status_code for r in responses]


def started_order(rows, after=None):
    return [
        g
        for g in sorted((g for g in rows if g.started_at), key=lambda g: g.started_at)
        if not after or g.started_at > after
    ]


def test_a_chat_message_starts_before_a_flood_of_api_calls(stack):
    flooder, key = make_api_user(stack, "flooder")

    async def scenario():
        flood = asyncio.create_task(api_calls(stack, key, 200))
        wait = asyncio.get_running_loop().run_in_executor(
            None,
            lambda: wait_for(lambda: len(generations(stack, [flooder])) >= 200 or flood.done(), 60, "200 calls queued"),
        )
        await wait
        chatter = SimUser(stack.web_url, "chatter")
        try:
            await chatter.signup()
            stats = Stats()
            await chatter.turn(SLOW, stats)
            assert not stats.errors, stats.errors
        finally:
            await chatter.close()
        return await flood

    statuses = asyncio.run(scenario())
    assert statuses.count(200) == 200, collections.Counter(statuses)
    rows = generations(stack)
    [mine] = [g for g in rows if g.user_id != flooder]
    waiting_then = started_order([g for g in rows if g.user_id == flooder], after=mine.enqueued_at)
    assert len(waiting_then) >= 10, "the flood was still waiting when the chat message came"
    assert mine.started_at < waiting_then[9].started_at


def test_three_users_alternate(stack):
    users = [make_api_user(stack, f"turns{index}") for index in range(3)]

    async def scenario():
        return await asyncio.gather(*(api_calls(stack, key, 30) for _, key in users))

    results = asyncio.run(scenario())
    statuses = collections.Counter(status for statuses in results for status in statuses)
    assert statuses == {200: 90}, statuses
    rows = generations(stack, [user_id for user_id, _ in users])
    all_in = max(g.created_at for g in rows)
    # The order in which the worker took the jobs (RQ's started_at, set one at a time as it dequeues);
    # the claims' own times race between the four job threads.
    taken = sorted((dequeued_at(stack, g), g.user_id) for g in rows)
    # Only while every user still has work waiting: once one user's last job has started, the others'
    # remaining jobs rightly run back to back.
    contended_until = min(max(when for when, user_id in taken if user_id == uid) for uid, _ in users)
    order = [user_id for when, user_id in taken if all_in < when <= contended_until]
    assert len(order) >= 30
    assert max(len(list(run)) for _, run in itertools.groupby(order)) <= DEPTH, order


def dequeued_at(stack, generation):
    from rq.job import Job

    started = Job.fetch(generation.job_id, connection=stack.redis).started_at
    return started.replace(tzinfo=None) if started.tzinfo is None else started.astimezone(UTC).replace(tzinfo=None)


def test_a_capped_provider_leaves_room_for_the_others(stack):
    from webapp import scheduling
    from webapp.extensions import db

    with stack.app.app_context():
        scheduling.set_provider_caps({"openai": 2})
        db.session.commit()
        db.session.remove()
    user_id, key = make_api_user(stack, "capped")
    try:

        async def scenario():
            openai = asyncio.create_task(api_calls(stack, key, 20, prompt="cap ttft=0.3 tps=0 tokens=2"))
            await asyncio.sleep(0.5)  # the OpenAI work is in line first
            echo = await api_calls(stack, key, 5, model="echo", prompt="hi")
            still_waiting = sum(g.started_at is None for g in generations(stack, [user_id]) if g.model_id != "echo")
            return echo, still_waiting, await openai

        echo, still_waiting, openai = asyncio.run(scenario())
        assert echo == [200] * 5 and openai == [200] * 20
        assert still_waiting > 0, "every echo reply finished while OpenAI work still waited"
        spans = [(g.started_at, g.finished_at) for g in generations(stack, [user_id]) if g.model_id != "echo"]
        overlap = max(sum(s <= t < f for s, f in spans) for t, _ in spans)
        assert overlap <= 2, "never more than the cap at once"
    finally:
        with stack.app.app_context():
            scheduling.set_provider_caps({})
            db.session.commit()
            db.session.remove()


def test_killing_one_of_two_workers_loses_and_doubles_nothing(stack):

    from webapp.models import GenerationStatus

    second = stack.start_worker("fair-second")
    user_id, key = make_api_user(stack, "survivor")
    try:
        stack.wait_for_workers(2)

        async def scenario():
            calls = asyncio.create_task(api_calls(stack, key, 40, prompt="kill ttft=0.3 tps=0 tokens=2"))
            await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: wait_for(
                    lambda: sum(g.started_at is not None for g in generations(stack, [user_id])) >= 8, 60, "running"
                ),
            )
            os.killpg(second.pid, signal.SIGKILL)
            waiting = {g.id for g in generations(stack, [user_id]) if g.started_at is None}
            return waiting, await calls

        waiting, statuses = asyncio.run(scenario())
        rows = {g.id: g for g in generations(stack, [user_id])}
        assert len(rows) == 40 and waiting
        for generation_id in waiting:
            row = rows[generation_id]
            assert row.status == GenerationStatus.SUCCEEDED, (row.id, row.status, row.error)
            assert row.attempts == 1, "run once"
        assert all(status in (200, 502, 503) for status in statuses)
    finally:
        stop_process(second)
