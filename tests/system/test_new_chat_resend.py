"""The same new-chat form sent twice at once (a double click, a browser resend) makes exactly one conversation,
through gunicorn and a worker as `make run` starts them, on PostgreSQL."""

from __future__ import annotations

import threading

import httpx
from sqlalchemy import create_engine, text

from tests.support.forms import CSRF_RE, SUBMISSION_RE
from tests.support.stack import Stack
from webapp.config import normalize_database_url

ROUNDS = 10
PASSWORD = "correct horse"


def send_pairs(browser: httpx.Client) -> None:
    """Signs up, then sends each new-chat form twice at the same moment."""
    page = browser.get("/auth/signup").text
    form = {"username": "twice", "password": PASSWORD, "confirm": PASSWORD, "csrf_token": CSRF_RE.search(page)[1]}
    assert browser.post("/auth/signup", data=form).status_code == 302
    for round_ in range(ROUNDS):
        page = browser.get("/chat/").text
        form = {
            "content": f"round {round_}",
            "csrf_token": CSRF_RE.search(page)[1],
            "submission_token": SUBMISSION_RE.search(page)[1],
        }
        together, answers = threading.Barrier(2), [None, None]

        def send(index, form=form, together=together, answers=answers):
            together.wait(timeout=10)
            answers[index] = browser.post("/chat/", data=form)

        threads = [threading.Thread(target=send, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert [answer.status_code for answer in answers] == [302, 302], [a.text[:300] for a in answers]
        assert answers[0].headers["Location"] == answers[1].headers["Location"]


def test_the_same_new_chat_form_sent_twice_at_once_makes_one_conversation(tmp_path, postgres_url, redis_url):
    with Stack(tmp_path, postgres_url, redis_url, env={"ECHO_DELAY": "0"}) as stack:
        with httpx.Client(base_url=stack.url, timeout=30) as browser:
            send_pairs(browser)
    engine = create_engine(normalize_database_url(postgres_url))
    with engine.connect() as connection:
        conversations = connection.scalar(text("SELECT count(*) FROM conversations"))
        messages = connection.scalar(text("SELECT count(*) FROM messages"))
        empty = connection.scalar(
            text(
                "SELECT count(*) FROM conversations c WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)"
            )
        )
    engine.dispose()
    assert (conversations, messages, empty) == (ROUNDS, ROUNDS, 0)
