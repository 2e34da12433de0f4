"""The official openai SDK and litellm as clients of /v1 and of /api/chat/completions/, streaming included."""

import os

import openai
import pytest
from sqlalchemy import select

from tests.support.api import bearer, http
from webapp.extensions import db
from webapp.models import Generation

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def sdk(base_url: str, key: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def litellm():
    from webapp.llm.providers.litellm import import_litellm

    return import_litellm()


def test_sdk_lists_ids_and_aliases(server, api_key):
    ids = {model.id for model in sdk(f"{server}/v1", api_key).models.list()}
    assert {"echo", "offline", "gpt-4o", "4o", "gpt-3.5-turbo"} <= ids
    assert sdk(f"{server}/v1", api_key).models.retrieve("offline").owned_by == "echo"


def test_sdk_completion_on_v1(app, server, api_key, worker):
    client = sdk(f"{server}/v1", api_key)
    completion = client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "hello from the sdk"},
        ],
    )
    assert completion.object == "chat.completion" and completion.model == "echo"
    assert "hello from the sdk" in completion.choices[0].message.content
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        assert generation.source == "api" and generation.status == "succeeded" and generation.job_id
        assert generation.system_prompt == "Be brief."
        assert [m["role"] for m in generation.request_messages] == ["user", "assistant", "user"]
        assert generation.message_id is None and generation.input_tokens


def test_sdk_streams_from_a_provider_on_v1(server, api_key, worker, openai_server, monkeypatch):
    # Pieces 50 ms apart (the fake's own pace knob): the reply is relayed as it comes, not read whole
    # after the provider ends, whatever the machine's speed.
    monkeypatch.setattr(openai_server, "tokens_per_second", 20)
    stream = sdk(f"{server}/v1", api_key).chat.completions.create(
        model="4o",
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.5,
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "stream this please"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Fake answer to: stream this please"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    sent = openai_server.chat_requests[-1].json
    assert sent["model"] == "gpt-4o" and sent["temperature"] == 0.5
    assert sent["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "stream this please"}]


def test_sdk_against_the_seed_endpoint_with_a_jwt(server, access_token, worker):
    client = sdk(f"{server}/api", access_token, default_query={"provider": "openai"})
    completion = client.chat.completions.create(
        model="gpt-3.5-turbo", messages=[{"role": "user", "content": "How is the weather on Venus?"}]
    )
    assert completion.choices[0].message.content == "Fake answer to: How is the weather on Venus?"
    stream = client.chat.completions.create(
        model="gpt-3.5-turbo", stream=True, messages=[{"role": "user", "content": "and on Mars?"}]
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Fake answer to: and on Mars?"


def test_sdk_errors_map_to_its_exceptions(app, server, api_key, worker):
    with pytest.raises(openai.AuthenticationError):
        sdk(f"{server}/v1", "sb-wrong").models.list()
    client = sdk(f"{server}/v1", api_key)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="echo", messages=[])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], temperature=9)


def test_provider_rate_limit_is_429_with_retry_after(app, server, api_key, worker, openai_server):
    app.config["RETRY_MAX_ATTEMPTS"] = 1
    openai_server.fail_next("rate_limit", retry_after=7)
    reply = http(
        "POST",
        f"{server}/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers=bearer(api_key),
    )
    assert reply.status == 429, reply.text
    assert reply.headers["Retry-After"] == "7" and reply.json["error"]["type"] == "rate_limit_error"


def test_a_model_the_account_may_not_use_is_403(app, server, api_key):
    app.config["LLM_DISABLED_PROVIDERS"] = "gemini"
    from webapp import llm

    llm.configure(app.config)
    reply = http(
        "POST",
        f"{server}/v1/chat/completions",
        {"model": "gemini-1.5-pro", "messages": [{"role": "user", "content": "hi"}]},
        headers=bearer(api_key),
    )
    assert reply.status == 403 and reply.json["error"]["code"] == "model_not_allowed"
    assert "gemini-1.5-pro" not in {
        m["id"] for m in http("GET", f"{server}/v1/models", headers=bearer(api_key)).json["data"]
    }


def test_queue_down_is_503(app, server, api_key, tmp_path):
    app.config["REDIS_URL"] = f"unix://{tmp_path / 'nothing-listens-here.sock'}"
    app.extensions.pop("switchboard_redis", None)
    reply = http(
        "POST",
        f"{server}/v1/chat/completions",
        {"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        headers=bearer(api_key),
    )
    assert reply.status == 503 and reply.json["error"]["code"] == "queue_unavailable"


def test_litellm_on_v1_streaming_and_not(server, api_key, worker, litellm):
    args = {"model": "openai/echo", "api_base": f"{server}/v1", "api_key": api_key, "max_retries": 0}
    response = litellm.completion(messages=[{"role": "user", "content": "litellm says hi"}], **args)
    assert "litellm says hi" in response.choices[0].message.content
    stream = litellm.completion(messages=[{"role": "user", "content": "litellm streams"}], stream=True, **args)
    assert "litellm streams" in "".join(chunk.choices[0].delta.content or "" for chunk in stream)


def test_litellm_on_the_seed_endpoint(server, access_token, worker, litellm):
    stream = litellm.completion(
        model="openai/gpt-3.5-turbo",
        api_base=f"{server}/api",
        api_key=access_token,
        messages=[{"role": "user", "content": "via litellm"}],
        stream=True,
        max_retries=0,
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "Fake answer to: via litellm"
