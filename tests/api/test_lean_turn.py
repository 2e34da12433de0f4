"""One lean path for a /v1 call: one recorder (enqueued_at, job id), the provider asked as the client reads."""

import json
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from tests.support.api import bearer, http
from tests.support.waiting import wait_for
from webapp.api.completions import cancel
from webapp.extensions import db
from webapp.models import Generation
from webapp.queue import get_queue, get_redis
from workers import recovery


def ask(server, key, stream, content="hello"):
    return http(
        "POST",
        f"{server}/v1/chat/completions",
        {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": content}]},
        bearer(key),
    )


def streamed_text(body: str) -> str:
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])


def test_a_non_streaming_call_asks_the_provider_without_streaming(app, server, api_key, worker, openai_server):
    reply = ask(server, api_key, False, "whole please")
    assert reply.status == 200, reply.text
    assert reply.json["choices"][0]["message"]["content"] == "Fake answer to: whole please"
    assert [r.json["stream"] for r in openai_server.chat_requests] == [False]
    streamed = ask(server, api_key, True, "pieces please")
    assert streamed.status == 200
    assert streamed_text(streamed.text) == "Fake answer to: pieces please"
    assert [bool(r.json.get("stream")) for r in openai_server.chat_requests] == [False, True]
    with app.app_context():
        streams = [g.streams for g in db.session.scalars(select(Generation).order_by(Generation.id))]
    assert streams == [False, True]


def test_an_api_generation_is_recorded_with_its_job_id_and_enqueued_at(app, server, api_key, worker):
    assert ask(server, api_key, False).status == 200
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        assert generation.job_id == f"generation-{generation.id}"
        assert generation.enqueued_at is not None and generation.enqueued_at <= generation.started_at


def test_fifty_calls_at_once_get_no_5xx(app, server, api_key, worker):
    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(lambda i: ask(server, api_key, False, f"call {i}"), range(50)))
    assert [r.status for r in replies if r.status != 200] == []
    with app.app_context():
        generations = db.session.scalars(select(Generation)).all()
        assert len(generations) == 50 and all(g.status == "succeeded" for g in generations)
        assert len({g.id for g in generations}) == len({g.job_id for g in generations}) == 50


def test_the_sweep_leaves_a_young_api_generation_alone(app, server, api_key, user):
    """An API call's job not queued yet (no worker here, its queue emptied) is the web's for the grace period."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(ask, server, api_key, False)
        with app.app_context():
            generation_id = wait_for(lambda: db.session.scalar(select(Generation.id)), what="the call recorded")
            get_queue().empty()
            assert recovery.sweep(get_redis()) == {}
            db.session.rollback()
            assert db.session.get(Generation, generation_id).requeues == 0
            cancel(generation_id)
        assert pending.result().status == 409
