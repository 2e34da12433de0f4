"""Cooldowns: after n failures of one kind within the window a model is skipped (every worker reads the
same state in Redis), the admin home says until when and why, and it ends; a Retry-After is honoured."""

import re

from tests.support.fallback import chat_once, set_chain, signed_up
from tests.support.waiting import wait_for
from webapp.accounts import find_user
from webapp.extensions import db


def admin_client(app):
    client = signed_up(app, "echo", username="root")
    with app.app_context():
        find_user("root").role = "admin"
        db.session.commit()
    return client


def state_of(admin, model_id):
    page = admin.get("/admin/").get_data(as_text=True)
    row = re.search(rf'<tr data-model="{re.escape(model_id)}">(.*?)</tr>', page, re.S)
    assert row, page
    return re.sub(r"<[^>]+>", "", row.group(1)).strip()


def test_a_cooldown_starts_after_n_failures_is_skipped_shows_and_ends(make_app, servers):
    openai_server, _gemini = servers
    app = make_app(COOLDOWN_FAILURES=2, COOLDOWN_WINDOW_SECONDS=60, COOLDOWN_SECONDS=4)
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"])
    admin = admin_client(app)
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("unavailable", times=2, path="chat")

    first = chat_once(app, client)
    assert first.model_id == "gemini-1.5-pro"
    assert "healthy" in state_of(admin, "gpt-4o")  # one failure: not yet

    second = chat_once(app, client)
    assert second.model_id == "gemini-1.5-pro"
    state = state_of(admin, "gpt-4o")
    assert "cooling down until" in state and "provider down" in state.lower(), state
    assert "healthy" in state_of(admin, "gemini-1.5-pro")

    third = chat_once(app, client)  # gpt-4o is not asked while it cools down
    assert len(openai_server.chat_requests) == 2
    assert [(a["model"], a["kind"]) for a in third.attempt_log] == [
        ("gpt-4o", "cooling_down"),
        ("gemini-1.5-pro", None),
    ]
    assert third.status == "succeeded" and third.model_id == "gemini-1.5-pro"

    wait_for(lambda: "healthy" in state_of(admin, "gpt-4o"), timeout=15, what="the cooldown to end")
    fourth = chat_once(app, client)
    assert fourth.model_id == "gpt-4o" and fourth.status == "succeeded"
    assert len(openai_server.chat_requests) == 3


def test_a_retry_after_is_honoured_when_moving_on(make_app, servers):
    openai_server, _gemini = servers
    app = make_app(COOLDOWN_FAILURES=10)
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"])
    admin = admin_client(app)
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("rate_limit", retry_after=120, path="chat")
    assert chat_once(app, client).model_id == "gemini-1.5-pro"
    state = state_of(admin, "gpt-4o")
    assert "cooling down until" in state and "rate limited" in state.lower(), state
    assert chat_once(app, client).model_id == "gemini-1.5-pro"
    assert len(openai_server.chat_requests) == 1
