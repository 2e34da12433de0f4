"""Enabled models, default model, aliases and role allow-lists, enforced in the chat pages and the worker."""

import re

import pytest
from sqlalchemy import func, select

from tests.support.admin import make_user, post, save_models
from tests.support.chat import send
from webapp import access
from webapp.extensions import db
from webapp.llm import get_aliases
from webapp.models import Conversation, Generation, Message, User


@pytest.fixture
def app_config(app_config):
    # OpenAI counts as set up (a key; nothing here calls it), so its models are offered.
    return {**app_config, "OPENAI_API_KEY": "sk-test-not-called"}


def all_model_ids(client):
    page = client.get("/admin/models").get_data(as_text=True)
    return re.findall(r'name="enabled" value="([^"]+)"', page)


def login_bob(client, auth, app):
    auth.logout()
    if not app.extensions.get("bob_made"):
        make_user(app, "bob")
        app.extensions["bob_made"] = True
    auth.login("bob")


def test_models_page_lists_models_and_saves_the_default(app, client, admin):
    ids = all_model_ids(client)
    assert "echo" in ids and "gpt-4o" in ids
    response = save_models(client, enabled=ids, default="gpt-4o-mini")
    assert response.status_code == 302
    with app.app_context():
        from webapp.llm import get_default_model

        assert get_default_model().model_id == "gpt-4o-mini"


def test_unknown_model_in_the_form_is_refused(client, admin):
    response = save_models(client, enabled=["echo", "no-such-model"])
    assert response.status_code == 400


def test_role_allow_list_is_enforced_in_chat_and_worker(app, client, auth, admin, run_jobs):
    ids = all_model_ids(client)
    # Users may only use gpt-4o-mini; the default (echo) is not allowed for them.
    save_models(client, enabled=ids, user_models=["gpt-4o-mini"])
    login_bob(client, auth, app)
    with app.app_context():
        bob = db.session.scalar(select(User).where(User.username == "bob"))
        assert [m.model_id for m in access.allowed_models(bob)] == ["gpt-4o-mini"]
        with pytest.raises(access.ModelNotAllowed):
            access.check_model_allowed(bob, "echo")
        assert access.check_model_allowed(bob, "4o-mini") == "gpt-4o-mini"  # aliases resolve

    # A new chat falls back to a model the user may use.
    send(client, "first")
    with app.app_context():
        conversation = db.session.scalar(select(Conversation))
        assert conversation.model_id == "gpt-4o-mini"
        # An old conversation on a model the role may not use: refused, nothing saved.
        conversation.model_id = "echo"
        db.session.commit()
        conversation_id = conversation.id
        before = db.session.scalar(select(func.count(Message.id)))
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "not available to your account" in page
    response = send(client, "second", conversation_id=conversation_id)
    # Refused in place: the typed text stays in the composer, with the reason beside it.
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "Not sent: The model echo is not available to your account." in page
    assert re.search(r'<textarea[^>]*name="content"[^>]*>\s*second</textarea>', page)
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id))) == before

    # The worker checks too: a generation queued before the rule changed fails with a reason.
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        generation.model_id = "echo"
        db.session.commit()
    run_jobs()
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        assert generation.status == "failed"
        assert generation.error_code == "model_not_allowed"
        assert "not available to your account" in generation.error
        assert generation.text == ""


def test_disabled_model_disappears_and_conversations_say_so(app, client, auth, admin, run_jobs):
    ids = all_model_ids(client)
    login_bob(client, auth, app)
    send(client, "on echo")
    run_jobs()
    with app.app_context():
        conversation_id = db.session.scalar(select(Conversation.id))
    auth.logout()
    auth.login("root")
    save_models(client, enabled=[m for m in ids if m != "echo"], default="gpt-4o")
    login_bob(client, auth, app)
    with app.app_context():
        bob = db.session.scalar(select(User).where(User.username == "bob"))
        assert "echo" not in [m.model_id for m in access.allowed_models(bob)]
    assert '<option value="gpt-4o"' in client.get("/chat/").get_data(as_text=True)
    assert '<option value="echo"' not in client.get("/chat/").get_data(as_text=True)  # gone from the picker
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "The model echo has been disabled by an administrator." in page
    response = send(client, "again", conversation_id=conversation_id)
    assert response.status_code == 403 and "Not sent" in response.get_data(as_text=True)


def test_no_allowed_model_is_a_plain_refusal(app, client, auth, admin):
    save_models(client, enabled=all_model_ids(client), user_models=[])
    login_bob(client, auth, app)
    response = send(client, "anything")
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "No model is available to your account" in page
    assert re.search(r'<textarea[^>]*name="content"[^>]*>\s*anything</textarea>', page)
    with app.app_context():
        assert db.session.scalar(select(func.count(Conversation.id))) == 0


def test_admin_role_allow_list_is_separate(app, client, admin):
    save_models(client, enabled=all_model_ids(client), user_models=["echo"], admin_models=["gpt-4o"])
    with app.app_context():
        root = db.session.scalar(select(User).where(User.username == "root"))
        assert [m.model_id for m in access.allowed_models(root)] == ["gpt-4o"]
    page = client.get("/admin/models").get_data(as_text=True)
    assert 'name="restrict_admin" type="checkbox" value="y" checked' in page or "restrict_admin" in page


def test_aliases_use_the_shared_alias_store(app, client, admin):
    response = post(client, "/admin/models/aliases", {"alias": "fast", "model": "4o-mini"}, page="/admin/models")
    assert response.status_code == 302
    with app.app_context():
        assert get_aliases()["fast"] == "gpt-4o-mini"
    assert "fast" in client.get("/admin/models").get_data(as_text=True)
    response = post(client, "/admin/models/aliases", {"alias": "bad", "model": "nope-model"}, page="/admin/models")
    assert response.status_code == 400 and "Unknown model" in response.get_data(as_text=True)
    response = post(client, "/admin/models/aliases/remove", {"alias": "fast"}, page="/admin/models")
    assert response.status_code == 302
    with app.app_context():
        assert "fast" not in get_aliases()


def test_role_allow_list_is_enforced_in_the_json_api(app, client, admin, run_jobs):
    save_models(client, enabled=all_model_ids(client), user_models=["echo"])
    make_user(app, "bob")
    api = app.test_client()
    token = api.post("/api/token/", json={"username": "bob", "password": "correct horse"}).get_json()["access"]
    headers = {"Authorization": f"Bearer {token}"}
    listed = {m["id"] for m in api.get("/v1/models", headers=headers).get_json()["data"]}
    assert "echo" in listed and "gpt-4o" not in listed and "gpt-4o-mini" not in listed
    refused = api.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert refused.status_code == 403
    assert "not available to your account" in refused.get_json()["error"]["message"]
    with app.app_context():
        assert db.session.scalar(select(func.count(Generation.id))) == 0
