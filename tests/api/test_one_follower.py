"""One follower of a reply: coalesced writes reach it on a timer, and /v1 waits on the process's pub/sub reader."""

import json
import threading
from http.client import HTTPConnection
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from tests.support.api import bearer, http
from tests.support.waiting import wait_for
from webapp import live
from webapp.extensions import db
from webapp.models import Generation
from webapp.queue import get_redis

FLUSH_MS = 300  # far longer than the fake provider takes for its first pieces: only the timer writes them


@pytest.fixture
def app_config(app_config):
    return {**app_config, "LIVE_FLUSH_MS": FLUSH_MS}


def test_text_before_a_stalled_provider_reaches_the_follower_on_the_flush_timer(
    app, server, api_key, worker, openai_server
):
    openai_server.fail_next("stall", after=5, seconds=6)
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "one two three four five six"}]}
    caller = threading.Thread(target=http, args=("POST", f"{server}/v1/chat/completions", body, bearer(api_key)))
    caller.start()
    openai_server.wait_for_requests(1, timeout=60)  # the worker's first call imports the SDK: not timed here
    with app.app_context():
        generation_id = wait_for(
            lambda: not db.session.rollback() and db.session.scalar(select(Generation.id)), what="the call recorded"
        )
        text = wait_for(
            lambda: (t := live.read_all(get_redis(), generation_id)) == "Fake answer to: one two " and t,
            timeout=4,  # the provider stalls for 6 s after its fifth piece
            what="the five pieces before the stall",
        )
        db.session.rollback()
        assert text and db.session.get(Generation, generation_id).status == "running", "seen before the stall ended"
    caller.join(30)


def test_waiting_v1_streams_share_the_process_pub_sub_reader(app, server, api_key):
    """50 streams waiting for their first text (no worker runs them): no Redis connection blocked for each."""
    url = urlsplit(server)
    body = json.dumps({"model": "echo", "stream": True, "messages": [{"role": "user", "content": "wait"}]})
    connections = []
    try:
        for _ in range(50):
            connection = HTTPConnection(url.hostname, url.port, timeout=30)
            connection.request(
                "POST", "/v1/chat/completions", body, {"Content-Type": "application/json", **bearer(api_key)}
            )
            connections.append(connection)
        with app.app_context():
            redis = get_redis()
            wait_for(
                lambda: not db.session.rollback() and db.session.scalar(select(func.count(Generation.id))) == 50,
                what="50 calls recorded",
            )
            channels = [live.notify_channel(i) for i in db.session.scalars(select(Generation.id))]
            wait_for(
                lambda: all(count == 1 for _channel, count in redis.pubsub_numsub(*channels)),
                what="every stream waiting on its notify channel",
            )
            assert redis.info("clients")["blocked_clients"] == 0
            # (Other connections of this Redis may subscribe too: RQ's workers, earlier tests' apps.)
            serving = [c for c in redis.client_list() if int(c.get("sub", 0)) >= 50]
            assert [int(c["sub"]) for c in serving] == [50], "one pub/sub connection serves every stream of the process"
    finally:  # closed even when an assertion fails: left open, they would fail the next test as leaks
        for connection in connections:
            connection.close()
    with app.app_context():  # each hang-up is noticed at its stream's next keep-alive, and cancels its job
        wait_for(
            lambda: (
                db.session.scalar(select(func.count(Generation.id)).where(Generation.status == "cancelled")) == 50
                and not db.session.rollback()
            ),
            timeout=30,
            what="every call cancelled",
        )
