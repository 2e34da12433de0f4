"""What is offered is what works: every model /api/supported-models/ lists can be used, and every provider that
is not set up (Gemini without a key, the in-house server without an address) gets the same 400."""

import openai
import pytest

from tests.support.accounts import AuthActions
from tests.support.admin import make_user
from tests.support.api import bearer, http
from webapp import site_settings
from webapp.extensions import db


@pytest.fixture
def app_config(app_config):
    return {**app_config, "GEMINI_API_KEY": None, "INHOUSE_API_BASE": None}


def supported(server, token, provider):
    return http("GET", f"{server}/api/supported-models/?provider={provider}", headers=bearer(token))


def test_every_offered_model_is_usable_and_unconfigured_providers_answer_alike(app, server, access_token, api_key):
    with app.app_context():
        site_settings.set_site(site_settings.DISABLED_MODELS, ["gpt-3.5-turbo"])
        db.session.commit()
    for provider in ("openai", "echo"):
        reply = supported(server, access_token, provider)
        assert reply.status == 200 and reply.json["models"], reply.text
        assert "gpt-3.5-turbo" not in reply.json["models"]  # turned off by an admin
        for model in reply.json["models"]:  # as a chat with ?provider= would find it
            model_id = model if provider == "echo" else f"{provider}/{model}"
            usable = http("GET", f"{server}/v1/models/{model_id}", headers=bearer(api_key))
            assert usable.status == 200, (model, usable.text)
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=api_key, max_retries=0, timeout=30)
    answers = []
    for provider, model in (("gemini", "gemini-1.5-pro"), ("inhouse", "inhouse")):
        reply = supported(server, access_token, provider)
        assert reply.status == 400 and reply.json["error"]["code"] == "model_not_configured", reply.text
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        answers.append((caught.value.status_code, caught.value.code))
        assert "not set up" in caught.value.message and "http" not in caught.value.message
    assert answers == [(400, "model_not_configured")] * 2


def test_admins_are_offered_only_usable_defaults_and_see_what_needs_setup(app):
    make_user(app, "root", role="admin")
    admin = app.test_client()
    AuthActions(admin).login("root")
    page = admin.get("/admin/models").get_data(as_text=True)
    default_select = page.split('id="default_model"', 1)[1].split("</select>", 1)[0]
    assert '"gpt-4o"' in default_select and '"echo"' in default_select
    assert "gemini" not in default_select and "inhouse" not in default_select
    assert "needs setup" in page.split('id="default_model"', 1)[1]  # the table still lists them, marked
