"""Following a reply (webapp.reply_events): what a reply waiting in the queue costs its readers."""

from __future__ import annotations

import time

from tests.support.accounts import AuthActions
from tests.support.chat import latest_generation, start_chat
from tests.support.queries import counting_statements
from webapp import reply_events
from webapp.models import Generation


def queued_generation(client, auth: AuthActions, app) -> Generation:
    auth.signup()
    start_chat(client, "first")
    start_chat(client, "second")  # no worker runs here: both stay queued
    return latest_generation(app)


def status_reads(app, generation: Generation, seconds: float, **options) -> int:
    """How often following the queued reply for ``seconds`` read its record."""
    with app.app_context(), counting_statements(app) as statements:
        events = reply_events.follow(generation, 0, 0.2, **options)
        deadline = time.monotonic() + seconds
        for _event in events:
            if time.monotonic() > deadline:
                events.close()
                break
    return sum("generations.status" in statement and "FROM generations" in statement for statement in statements)


def test_a_reader_shown_the_position_checks_the_record_every_second_near_the_front(client, auth, app):
    generation = queued_generation(client, auth, app)
    assert status_reads(app, generation, 2.5) >= 2


def test_a_reader_not_shown_the_position_reads_the_record_seldom(client, auth, app):
    """A non-streaming /v1 call waiting in line: hundreds of them must not cost a query a second each."""
    generation = queued_generation(client, auth, app)
    assert status_reads(app, generation, 2.5, shows_position=False) == 0


def test_the_check_slows_down_further_back_in_the_queue():
    check = reply_events._queued_check_seconds
    assert check(1, True) == check(10, True) == reply_events.POSITION_CHECK_SECONDS
    assert check(50, True) == 5
    assert check(500, True) == check(5000, True) == reply_events.POSITION_CHECK_MAX_SECONDS
    assert check(1, False) == reply_events.QUEUED_RECORD_CHECK_SECONDS
