"""Helpers for chat tests: post forms with their CSRF and one-time tokens, read records."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests.conftest import CSRF_RE
from webapp.extensions import db
from webapp.models import Conversation, Generation

FORM_TOKEN_RE = re.compile(r'name="submission_token"[^>]*value="([^"]+)"')


def page_tokens(client, path):
    page = client.get(path).get_data(as_text=True)
    return CSRF_RE.search(page).group(1), FORM_TOKEN_RE.search(page)


def start_chat(client, text, model=None):
    """Send the first message of a new chat (optionally picking its model); returns the conversation id."""
    csrf, token = page_tokens(client, "/chat/")
    data = {"content": text, "csrf_token": csrf, "submission_token": token.group(1)}
    if model:
        data["model"] = model
    response = client.post("/chat/", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].split("/chat/")[1].split("#")[0])


def post_form(client, path, data=None, page=None, **kwargs):
    """POST ``data`` to ``path`` with a CSRF token taken from ``page`` (default: the chat index)."""
    csrf, _ = page_tokens(client, page or "/chat/")
    return client.post(path, data={"csrf_token": csrf, **(data or {})}, **kwargs)


def latest_generation(app, conversation_id=None):
    with app.app_context():
        statement = select(Generation).order_by(Generation.id.desc())
        if conversation_id is not None:
            statement = statement.where(Generation.conversation_id == conversation_id)
        generation = db.session.scalar(statement)
        db.session.expunge(generation)
        return generation


def get_generation(app, generation_id):
    with app.app_context():
        generation = db.session.get(Generation, generation_id)
        db.session.expunge(generation)
        return generation


def get_conversation(app, conversation_id):
    with app.app_context():
        return db.session.get(Conversation, conversation_id)
