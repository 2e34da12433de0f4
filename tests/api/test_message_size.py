"""One message-size setting: the chat form and the APIs refuse the same sizes with the same status and words."""

import html

import pytest
from sqlalchemy import func, select

from tests.support.accounts import AuthActions
from tests.support.api import bearer, http
from tests.support.chat import post_form
from webapp.extensions import db
from webapp.models import Message

LIMIT = 50


@pytest.fixture
def app_config(app_config):
    # Chat requests may be as large as the attachment limits allow: 1 MB of files is about 3.3 MiB of request.
    return {**app_config, "MAX_MESSAGE_CHARS": LIMIT, "ATTACHMENT_MAX_TOTAL_MB": 1}


def messages(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Message.id)))


def test_too_long_is_a_400_and_too_large_a_413_with_the_same_words_on_form_and_api(app, server, api_key, worker):
    browser = app.test_client()
    AuthActions(browser).signup("writer")
    paths = [("/chat/", None), ("/api/chat/completions/", "echo"), ("/v1/chat/completions", "echo")]

    def send_api(path, text):
        body = {"model": "echo", "messages": [{"role": "user", "content": text}]}
        reply = http("POST", f"{server}{path}", body, headers=bearer(api_key))
        return reply.status, reply.json.get("error", {}).get("message")

    def send_form(text):
        page = post_form(browser, "/chat/", {"content": text, "submission_token": "t" * 20})
        return page.status_code, html.unescape(page.get_data(as_text=True))

    for size, status in ((LIMIT + 1, 400), (4 * 1024 * 1024, 413)):
        text = "x" * size
        form_status, form_page = send_form(text)
        answers = [send_api(path, text) for path, _ in paths[1:]]
        assert {form_status} | {status_ for status_, _ in answers} == {status}, (size, form_status, answers)
        for _, message in answers:
            wording = message.split(": ", 1)[1] if message.startswith("messages[0]") else message
            assert wording in form_page, (wording, size)
    assert messages(app) == 0
    ok_status, _ = send_api("/v1/chat/completions", "x" * LIMIT)
    assert ok_status == 200
