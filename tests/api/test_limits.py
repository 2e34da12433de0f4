"""Per-user limits: reserved before a job is queued, so concurrent requests cannot overshoot;
settled with the real usage afterwards; 429 with Retry-After from the API, a plain message on the page."""

import re
import threading
import time

from sqlalchemy import func, select

from tests.support.api import bearer, http
from webapp import limits
from webapp.extensions import db
from webapp.models import Generation, User
from webapp.queue import get_redis

BODY = {"model": "echo", "messages": [{"role": "user", "content": "count me"}]}


def set_limits(app, user_id, rpm=None, tpd=None):
    with app.app_context():
        user = db.session.get(User, user_id)
        user.requests_per_minute, user.tokens_per_day = rpm, tpd
        db.session.commit()


def fire(url, key, count):
    replies, barrier = [], threading.Barrier(count)

    def one():
        barrier.wait()
        replies.append(http("POST", url, BODY, bearer(key)))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return replies


def test_fifty_concurrent_requests_cannot_overshoot_requests_per_minute(app, server, worker, user, api_key):
    set_limits(app, user, rpm=10)
    replies = fire(f"{server}/v1/chat/completions", api_key, 50)
    statuses = sorted(reply.status for reply in replies)
    assert statuses.count(200) == 10 and statuses.count(429) == 40, statuses
    refused = next(reply for reply in replies if reply.status == 429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert refused.json["error"]["code"] == "limit_exceeded"
    assert "10 requests per minute" in refused.json["error"]["message"]
    with app.app_context():
        refused_count = db.session.scalar(
            select(func.count(Generation.id)).where(Generation.error_code == "limit_exceeded")
        )
        assert refused_count == 40  # every request is recorded, the refused ones with their reason


def test_requests_per_minute_count_the_last_sixty_seconds_not_the_clock_minute(app, server, worker, user, api_key):
    """Two requests 57 s ago still count, whichever clock minute they fell in: the next waits about 3 s.

    (Three seconds of room, not less: a loaded CI machine took over half a second to serve the request.)"""
    set_limits(app, user, rpm=2)
    with app.app_context():
        connection = get_redis()
        seconds, micros = connection.time()
        earlier = seconds * 1000 + micros // 1000 - 57_000
        key = f"switchboard:limits:{user}:requests"
        connection.zadd(key, {"earlier-1": earlier, "earlier-2": earlier})
    refused = http("POST", f"{server}/v1/chat/completions", BODY, bearer(api_key))
    assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 3, refused.json
    with app.app_context():  # once they are a minute old, they no longer count
        get_redis().zadd(key, {"earlier-1": earlier - 4000, "earlier-2": earlier - 4000})
    assert http("POST", f"{server}/v1/chat/completions", BODY, bearer(api_key)).status == 200


def test_tokens_per_day_are_reserved_then_settled_with_real_usage(app, client, auth, run_jobs):
    from tests.support.chat import send

    auth.signup("tess")
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.username == "tess"))
    set_limits(app, user_id, tpd=4500)  # each message reserves about 1000 tokens until it is settled
    for text in ["a", "b", "c", "d", "e"]:
        send(client, text)
    with app.app_context():
        refused = db.session.scalars(select(Generation).where(Generation.error_code == "limit_exceeded")).all()
        assert [g.message.content for g in refused] == ["e"]
        assert "tokens for today" in refused[0].error and "midnight UTC" in refused[0].error
    run_jobs()
    with app.app_context():
        used = sum(
            g.input_tokens + g.output_tokens
            for g in db.session.scalars(select(Generation).where(Generation.status == "succeeded"))
        )
        day_key = limits._keys(user_id, time.time())[1]
        assert int(get_redis().get(day_key)) == used  # estimates replaced by the real usage
    send(client, "f")  # with the estimates given back, more fits again
    with app.app_context():
        assert (
            db.session.scalar(select(func.count(Generation.id)).where(Generation.error_code == "limit_exceeded")) == 1
        )


def test_the_page_says_when_the_limit_resets(app, client, auth):
    from tests.support.chat import send

    auth.signup("pat")
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.username == "pat"))
    set_limits(app, user_id, rpm=1)
    send(client, "first")
    response = send(client, "second")
    page = client.get(response.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert "1 requests per minute" in page and "send again in" in page
    assert "second" in page  # the message itself is kept
    # ... and its text is back in the composer, to send again later
    assert re.search(r'<textarea[^>]*name="content"[^>]*>\s*second</textarea>', page)


def test_site_default_applies_when_the_user_has_none(app, client, auth):
    from tests.support.chat import send

    app.config["DEFAULT_REQUESTS_PER_MINUTE"] = 2
    auth.signup("quinn")
    send(client, "one")
    send(client, "two")
    with app.app_context():
        assert (
            db.session.scalar(select(func.count(Generation.id)).where(Generation.error_code == "limit_exceeded")) == 0
        )
    send(client, "three")
    with app.app_context():
        assert (
            db.session.scalar(select(func.count(Generation.id)).where(Generation.error_code == "limit_exceeded")) == 1
        )
