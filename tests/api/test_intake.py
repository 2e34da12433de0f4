"""Taking calls in (webapp.api.intake): one credential's calls a few at a time, before any database work."""

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from tests.api.test_lean_turn import ask
from tests.support.api import bearer, http
from tests.support.waiting import wait_for
from webapp.accounts import create_user
from webapp.accounts.api_keys import create_key
from webapp.api import intake
from webapp.extensions import db
from webapp.models import Generation


def test_at_most_so_many_at_once_and_nothing_kept_afterwards():
    inside, most, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def call():
        with intake.in_turn("Bearer sb-same", 2):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            release.wait(10)
            with lock:
                inside[0] -= 1

    with ThreadPoolExecutor(6) as pool:
        calls = [pool.submit(call) for _ in range(6)]
        wait_for(lambda: intake.waiting_or_taken_in() == 6, what="six calls in or waiting")
        assert inside[0] == 2
        with intake.in_turn("Bearer sb-other", 2):  # another credential is not held up
            pass
        release.set()
        for done in calls:
            done.result(timeout=10)
    assert most[0] == 2
    assert intake.waiting_or_taken_in() == 0 and intake._turns == {}


def test_no_limit_with_zero():
    with intake.in_turn("Bearer sb-x", 0), intake.in_turn("Bearer sb-x", 0):
        assert intake.waiting_or_taken_in() == 0


def test_a_call_waits_its_turn_before_anything_is_recorded(app, server, api_key, worker):
    app.config["API_CALLS_TAKEN_IN_AT_ONCE"] = 1
    with app.app_context():
        other = create_user("other", "another long password")
        db.session.commit()
        _record, other_key = create_key(other, "tests")
        db.session.commit()

    def recorded():
        with app.app_context():
            return db.session.scalar(select(func.count(Generation.id)))

    with ThreadPoolExecutor(1) as pool:
        with intake.in_turn(f"Bearer {api_key}", 1):  # the key's one slot, held by "another call"
            waiting = pool.submit(ask, server, api_key, False, "in my turn")
            wait_for(lambda: intake.waiting_or_taken_in() == 2, what="the call waiting its turn")
            assert ask(server, other_key, False, "meanwhile").status == 200  # someone else goes ahead
            assert recorded() == 1  # theirs only: the waiting call has not touched the database
        reply = waiting.result(timeout=30)
    assert reply.status == 200 and reply.json["choices"][0]["message"]["content"].endswith("in my turn")
    assert recorded() == 2
    assert intake.waiting_or_taken_in() == 0


def test_a_refused_credential_gives_back_its_turn(server):
    for _ in range(3):
        reply = http("POST", f"{server}/v1/chat/completions", {"model": "echo", "messages": []}, bearer("sb-nope"))
        assert reply.status == 401
    assert intake.waiting_or_taken_in() == 0
