"""Only usable models are offered: a provider with no key or base URL has its models hidden from users,
shown disabled ("needs setup") to admins with a link to the providers page, and refused before sending."""

import re

import pytest
from sqlalchemy import func, select

from tests.support.admin import make_user
from tests.support.chat import send
from webapp.extensions import db
from webapp.models import Message

OPTION_RE = re.compile(r'<option value="([^"]+)"([^>]*)>')


@pytest.fixture
def app_config(app_config):
    # A fresh install: no provider keys and no base URLs, only the offline echo model works.
    return {**app_config, "OPENAI_API_KEY": None, "OPENAI_BASE_URL": None}


def options(page):
    """{model id: disabled?} of the new-chat model picker."""
    picker = page.split('id="new-model"', 1)[1].split("</select>", 1)[0]
    return {model_id: "disabled" in attrs for model_id, attrs in OPTION_RE.findall(picker)}


def test_users_are_offered_only_models_that_can_work(client, auth, app):
    auth.signup()
    page = client.get("/chat/").get_data(as_text=True)
    assert options(page) == {"echo": False}
    assert "needs setup" not in page and "/admin/providers" not in page
    defaults = client.get("/settings/models/").get_data(as_text=True)
    picker = defaults.split('id="default-model"', 1)[1].split("</select>", 1)[0]
    assert OPTION_RE.findall(picker) == [("echo", " selected")]


def test_admins_see_why_with_a_link_to_the_providers_page(client, auth, app):
    make_user(app, "root", role="admin", password="correct horse")
    auth.login("root")
    page = client.get("/chat/").get_data(as_text=True)
    offered = options(page)
    assert offered["echo"] is False
    assert offered["gpt-4o"] is True and offered["gemini-1.5-pro"] is True  # listed, but cannot be picked
    assert "gpt-4o — needs setup" in page
    assert "needs an API key (OPENAI_API_KEY) on the Providers page" in page
    assert '<a href="/admin/providers">set up providers</a>' in page


def test_sending_to_a_model_that_needs_setup_is_refused_and_keeps_the_text(client, auth, app):
    auth.signup()
    response = client.post(
        "/chat/",
        data={
            "content": "hello there",
            "model": "gpt-4o",
            "csrf_token": re.search(
                r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/chat/").get_data(as_text=True)
            ).group(1),
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Not sent" in page and re.search(r"<textarea[^>]*>\s*hello there</textarea>", page)
    # A conversation left on such a model (its key was removed since): refused before anything is saved.
    send(client, "on echo")
    with app.app_context():
        from webapp.models import Conversation

        conversation = db.session.scalar(select(Conversation))
        conversation.model_id = "gpt-4o"
        db.session.commit()
        conversation_id, before = conversation.id, db.session.scalar(select(func.count(Message.id)))
    notice = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "is not set up on this server yet" in notice and "OPENAI_API_KEY" not in notice  # no admin advice
    response = send(client, "again", conversation_id=conversation_id)
    assert response.status_code == 403
    assert "is not set up on this server yet" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id))) == before
