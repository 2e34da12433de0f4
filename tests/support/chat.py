"""Helpers for chat tests: post forms with their CSRF and one-time tokens, read records."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.forms import SUBMISSION_RE, csrf_token, page_tokens, post_form  # noqa: F401 (post_form: for tests)
from webapp.extensions import db
from webapp.models import Conversation, Generation


def send(client, text, conversation_id=None, submission_token=None):
    """Post a chat message (a new chat, or into ``conversation_id``) through the composer form; returns the response."""
    page_path = f"/chat/{conversation_id}" if conversation_id else "/chat/"
    page = client.get(page_path).get_data(as_text=True)
    token = csrf_token(client, page_path)
    form_token = SUBMISSION_RE.search(page)
    assert submission_token or form_token, f"no message form on {page_path}: {page[:3000]}"
    data = {"content": text, "csrf_token": token, "submission_token": submission_token or form_token.group(1)}
    post_path = f"/chat/{conversation_id}/messages" if conversation_id else "/chat/"
    return client.post(post_path, data=data)


def start_chat(client, text, model=None):
    """Send the first message of a new chat (optionally picking its model); returns the conversation id."""
    csrf, token = page_tokens(client, "/chat/")
    data = {"content": text, "csrf_token": csrf, "submission_token": token.group(1)}
    if model:
        data["model"] = model
    response = client.post("/chat/", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].split("/chat/")[1].split("#")[0])


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
