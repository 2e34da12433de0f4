"""/settings/models: defaults for new conversations and the models a user may use."""

import pytest

from tests.support.chat import get_conversation, post_form, start_chat
from webapp.extensions import db
from webapp.llm import get_models
from webapp.models import User


@pytest.fixture
def app_config(app_config):
    # OpenAI counts as set up (a key; nothing here calls it); Gemini and in-house do not.
    return {**app_config, "OPENAI_API_KEY": "sk-test-not-called"}


def user(app, name="alice"):
    with app.app_context():
        from sqlalchemy import select

        return db.session.scalar(select(User).where(User.username == name))


def test_needs_login(client):
    response = client.get("/settings/models/")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_lists_every_usable_model_with_provider_and_options(client, auth, app):
    auth.signup()
    page = client.get("/settings/models/").get_data(as_text=True)
    with app.app_context():
        models = get_models()
    for model in models:
        shown = f"<strong>{model.model_id}</strong>" in page
        assert shown == (model.provider in ("echo", "openai")), model.model_id  # only providers that are set up
    assert "provider: openai" in page and "provider: echo" in page
    assert "<code>temperature</code>" in page and "<code>delay</code>" in page
    assert '<option value="echo" selected>' in page
    assert 'href="/settings/models/"' in page  # the nav link


def test_defaults_apply_to_new_conversations(client, auth, app):
    auth.signup()
    response = post_form(
        client,
        "/settings/models/",
        {"model": "gpt-4o-mini", "system_prompt": "Answer in French."},
        page="/settings/models/",
    )
    assert response.status_code == 302
    account = user(app)
    assert account.default_model == "gpt-4o-mini" and account.default_system_prompt == "Answer in French."
    page = client.get("/settings/models/").get_data(as_text=True)
    assert 'name="option-frequency_penalty"' in page  # now the OpenAI model's options
    bad = post_form(
        client, "/settings/models/", {"model": "gpt-4o-mini", "option-top_p": "1.5"}, page="/settings/models/"
    )
    assert bad.status_code == 400 and "less than or equal to 1" in bad.get_data(as_text=True)
    good = post_form(
        client,
        "/settings/models/",
        {"model": "gpt-4o-mini", "system_prompt": "Answer in French.", "option-top_p": "0.9"},
        page="/settings/models/",
    )
    assert good.status_code == 302 and user(app).default_options == {"top_p": 0.9}
    conversation_id = start_chat(client, "bonjour")
    conversation = get_conversation(app, conversation_id)
    assert conversation.model_id == "gpt-4o-mini"
    assert conversation.system_prompt == "Answer in French." and conversation.options == {"top_p": 0.9}
    assert '<option value="gpt-4o-mini" selected>' in client.get("/chat/").get_data(as_text=True)


def test_unknown_model_is_refused(client, auth, app):
    auth.signup()
    response = post_form(client, "/settings/models/", {"model": "nope"}, page="/settings/models/")
    assert response.status_code == 400 and "Unknown model" in response.get_data(as_text=True)
    assert user(app).default_model is None
