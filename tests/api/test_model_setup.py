"""Models whose provider is not set up: a 400 (not temporary), and hidden from the model list; a failure known
before the first token is an HTTP error; a provider that is down stays a 503. Through the openai SDK."""

import openai
import pytest

from tests.support.api import bearer, http


@pytest.fixture
def app_config(app_config):
    # Gemini has no key on this server: its models cannot work.
    return {**app_config, "GEMINI_API_KEY": None}


def sdk(base_url: str, key: str) -> openai.OpenAI:
    # The SDK's own retries stay on: a 400 must not be retried (a 503 would be).
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=2, timeout=30)


def test_a_model_whose_provider_is_not_set_up_is_a_400_and_not_listed(server, api_key, gemini_server):
    client = sdk(f"{server}/v1", api_key)
    ids = {model.id for model in client.models.list()}
    assert "echo" in ids and "gpt-4o" in ids
    assert not any(model_id.startswith("gemini") for model_id in ids)
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="gemini-1.5-pro", stream=stream, messages=[{"role": "user", "content": "hi"}]
            )
        assert caught.value.status_code == 400 and caught.value.code == "model_not_configured"
        assert "not set up" in caught.value.message
    assert gemini_server.requests == []  # nothing was queued or sent


def test_the_seed_api_answers_400_too(server, access_token):
    reply = http(
        "POST",
        f"{server}/api/chat/completions/?provider=gemini",
        {"model": "gemini-1.5-pro", "messages": [{"role": "user", "content": "hi"}]},
        headers=bearer(access_token),
    )
    assert reply.status == 400 and reply.json["error"]["code"] == "model_not_configured"


def test_a_provider_refusing_the_key_fails_before_the_stream_starts(app, server, api_key, worker, openai_server):
    app.config["RETRY_MAX_ATTEMPTS"] = 1
    openai_server.fail_next("unauthorized")
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=api_key, max_retries=0, timeout=30)
    # The error comes from create() itself: there is no 200 stream to iterate.
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", stream=True, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502 and caught.value.code == "authentication_failed"


def test_a_provider_that_is_down_stays_503(app, server, api_key, worker):
    app.config["RETRY_MAX_ATTEMPTS"] = 1
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=api_key, max_retries=0, timeout=30)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="inhouse", stream=stream, messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 503 and caught.value.code == "provider_unavailable"
        # The provider's name and a plain reason, never the server's internal address.
        assert "in-house model server unavailable" in caught.value.message.lower()
        assert "127.0.0.1" not in caught.value.message
