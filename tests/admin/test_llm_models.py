"""LiteLLM models and the in-house model name, set from the admin page with nothing in the environment."""

import json

from sqlalchemy import select, text

from tests.fakes import FakeOllamaServer
from tests.support.admin import post
from tests.support.chat import send
from webapp.extensions import db
from webapp.llm import get_model, get_models
from webapp.models import AuditEvent, Generation, User

SECRET = "sk-ollama-proxy-secret-998877"


def save_litellm(client, models_json: str):
    data = {"litellm-enabled": "y", "litellm-models_json": models_json}
    return post(client, "/admin/providers/litellm", data, page="/admin/providers", token_field="litellm-csrf_token")


def test_litellm_models_from_the_admin_page_serve_a_chat(app, client, admin, run_jobs):
    with FakeOllamaServer(reply="hello from the admin-configured llama") as server:
        models = {"ollama_chat/llama3": {"api_base": server.url, "api_key": SECRET}}
        assert save_litellm(client, json.dumps(models)).status_code == 302
        with app.app_context():
            assert "ollama_chat/llama3" in [m.model_id for m in get_models()]
            assert get_model("ollama_chat/llama3").provider == "litellm"
            stored = db.session.execute(text("SELECT value FROM site_settings")).all()
            assert SECRET not in repr(stored)  # encrypted at rest
            events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "provider.models")).all()
            assert events and SECRET not in repr([(e.before, e.after) for e in events])
        page = client.get("/admin/providers").get_data(as_text=True)
        assert "ollama_chat/llama3" in page and SECRET not in page and "********" in page

        # Saving the page as shown (secret still masked) keeps the stored secret.
        masked = json.dumps({"ollama_chat/llama3": {"api_base": server.url, "api_key": "********"}})
        assert save_litellm(client, masked).status_code == 302

        with app.app_context():
            user = db.session.scalar(select(User).where(User.username == "root"))
            user.default_model = "ollama_chat/llama3"
            db.session.commit()
        send(client, "hi llama")
        run_jobs()
        with app.app_context():
            generation = db.session.scalar(select(Generation))
            assert generation.status == "succeeded", generation.error
            assert generation.text == "hello from the admin-configured llama"
        assert any(r.path.endswith("/api/chat") for r in server.requests)


def test_bad_json_is_refused_with_a_message_and_changes_nothing(app, client, admin):
    response = save_litellm(client, "{not json")
    assert response.status_code == 400
    assert "Not valid JSON" in response.get_data(as_text=True)
    response = save_litellm(client, json.dumps({"m": {"api_key": "********"}}))
    assert response.status_code == 400
    assert "nothing is stored for it yet" in response.get_data(as_text=True)
    with app.app_context():
        assert "m" not in [m.model_id for m in get_models()]


def test_inhouse_model_name_from_the_admin_page(app, client, admin):
    data = {"inhouse-enabled": "y", "inhouse-model_name": "team-llm-7b", "inhouse-base_url": "http://127.0.0.1:9"}
    assert (
        post(
            client, "/admin/providers/inhouse", data, page="/admin/providers", token_field="inhouse-csrf_token"
        ).status_code
        == 302
    )
    assert 'value="team-llm-7b"' in client.get("/admin/providers").get_data(as_text=True)
    from webapp.llm import config

    with app.app_context():
        assert config.setting("INHOUSE_MODEL") == "team-llm-7b"  # what the in-house provider asks for
