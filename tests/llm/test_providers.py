"""Each provider against its fake server: streaming, non-streaming, and every
fault mapped to the right error class."""

import json
import time

import pytest

import webapp.llm as llm
from tests.fakes import closed_port_url
from tests.support.api import GEMINI_KEY, OPENAI_KEY
from webapp.llm.errors import (
    AuthenticationFailed,
    BadRequest,
    ContentCutOff,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)

FAST_TIMEOUT = 0.4

# (fault, params, error class) - the same for streaming and non-streaming requests
COMMON_FAULTS = [
    ("rate_limit", {"retry_after": 7}, RateLimited),
    ("rate_limit", {"retry_after": None}, RateLimited),
    ("server_error", {}, ProviderUnavailable),
    ("unavailable", {}, ProviderUnavailable),
    ("forbidden", {}, AuthenticationFailed),
    ("bad_request", {}, BadRequest),
    ("not_found", {}, BadRequest),
    ("timeout", {}, ProviderTimeout),
    ("disconnect", {}, ProviderUnavailable),
]
STREAM_FAULTS = [("cut", {"after": 2}), ("stall", {"after": 2})]
PROMPT = "one two three four five six"


@pytest.fixture(params=["openai", "inhouse", "gemini", "litellm-ollama", "litellm-openai"])
def provider(request, use_settings, openai_server, gemini_server, ollama_server):
    """(model id, fake server, expected answer prefix) for each provider, with a short timeout."""
    kind = request.param
    common = {"LLM_REQUEST_TIMEOUT": FAST_TIMEOUT}
    if kind == "openai":
        use_settings(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY=OPENAI_KEY, **common)
        return "gpt-4o", openai_server, "Fake answer to: "
    if kind == "inhouse":
        use_settings(INHOUSE_API_BASE=openai_server.url, **common)
        return "inhouse/llama-3-8b", openai_server, "Fake answer to: "
    if kind == "gemini":
        use_settings(GEMINI_API_BASE=gemini_server.url, GEMINI_API_KEY=GEMINI_KEY, **common)
        return "gemini-1.5-pro", gemini_server, "Fake Gemini answer to: "
    request.getfixturevalue("litellm_module")
    if kind == "litellm-ollama":
        use_settings(LLM_MODELS={"ollama_chat/llama3": {"api_base": ollama_server.url}}, **common)
        return "ollama_chat/llama3", ollama_server, "Fake Ollama answer to: "
    use_settings(
        LLM_MODELS={"openai/gpt-4o-mini": {"api_base": openai_server.base_url, "api_key": OPENAI_KEY}}, **common
    )
    return "openai/gpt-4o-mini", openai_server, "Fake answer to: "


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_prompt(provider, stream):
    model_id, server, prefix = provider
    response = llm.get_model(model_id).prompt(PROMPT, system="Be brief", temperature=0.5, stream=stream)
    chunks = list(response)
    assert "".join(chunks) == prefix + PROMPT
    assert len(chunks) > 1 if stream else len(chunks) == 1
    assert response.usage.output_tokens > 0 and response.usage.input_tokens > 0
    assert response.duration_ms is not None and response.first_chunk_ms is not None
    body = server.last_request.json
    text = str(body)
    assert "Be brief" in text and PROMPT in text and "0.5" in text


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(
    "fault, params, error", COMMON_FAULTS, ids=[f"{f[0]}-{i}" for i, f in enumerate(COMMON_FAULTS)]
)
def test_faults(provider, stream, fault, params, error):
    model_id, server, _ = provider
    server.fail_next(fault, **params)
    start = time.monotonic()
    with pytest.raises(error) as info:
        llm.get_model(model_id).prompt(PROMPT, stream=stream).text()
    assert time.monotonic() - start < 5
    if fault == "rate_limit":
        assert info.value.retry_after == params["retry_after"]
    assert info.value.retryable == (error in (RateLimited, ProviderUnavailable, ProviderTimeout))
    assert OPENAI_KEY not in str(info.value) and GEMINI_KEY not in str(info.value)


@pytest.mark.parametrize("fault, params", STREAM_FAULTS, ids=[f[0] for f in STREAM_FAULTS])
def test_stream_cut_half_way_keeps_partial_text(provider, fault, params):
    model_id, server, prefix = provider
    server.fail_next(fault, **params)
    response = llm.get_model(model_id).prompt(PROMPT)
    received = []
    with pytest.raises(ContentCutOff) as info:
        for chunk in response:
            received.append(chunk)
    assert info.value.partial_text == "".join(received)
    assert (prefix + PROMPT).startswith(info.value.partial_text) and info.value.partial_text
    assert info.value.retryable and response.error is info.value
    count = len(server.requests)
    with pytest.raises(ContentCutOff):
        response.text()  # fails the same way again, without another request
    assert len(server.requests) == count


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_length_limit_is_content_cut_off(provider, stream):
    model_id, server, prefix = provider
    server.fail_next("length", after=3)
    with pytest.raises(ContentCutOff) as info:
        llm.get_model(model_id).prompt(PROMPT, stream=stream, max_tokens=3).text()
    assert info.value.reason == "length" and not info.value.retryable
    assert info.value.partial_text and (prefix + PROMPT).startswith(info.value.partial_text)


def test_malformed_json_whole_answer(provider):
    model_id, server, _ = provider
    server.fail_next("malformed")
    with pytest.raises(ProviderUnavailable) as info:
        llm.get_model(model_id).prompt(PROMPT, stream=False).text()
    if not model_id.startswith("openai/"):  # litellm reports the OpenAI SDK's parse failure as a 500
        assert "malformed" in str(info.value)


def test_refused_connection(provider, use_settings):
    model_id, _, _ = provider
    dead = closed_port_url()
    use_settings(
        OPENAI_BASE_URL=dead + "/v1",
        OPENAI_API_KEY=OPENAI_KEY,
        INHOUSE_API_BASE=dead,
        GEMINI_API_BASE=dead,
        GEMINI_API_KEY=GEMINI_KEY,
        LLM_REQUEST_TIMEOUT=FAST_TIMEOUT,
        LLM_MODELS={
            "ollama_chat/llama3": {"api_base": dead},
            "openai/gpt-4o-mini": {"api_base": dead + "/v1", "api_key": OPENAI_KEY},
        },
    )
    start = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        llm.get_model(model_id).prompt(PROMPT).text()
    assert time.monotonic() - start < 3


# -- provider specifics --------------------------------------------------------------


def test_openai_streams_with_usage_and_sends_key(openai_settings):
    llm.get_model("4o-mini").prompt("hi", max_tokens=20, stop="END", seed=3).text()
    body = openai_settings.last_request.json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "gpt-4o-mini" and body["max_tokens"] == 20 and body["stop"] == "END"
    assert openai_settings.last_request.header("authorization") == f"Bearer {OPENAI_KEY}"


def test_openai_model_setting_and_prefix(openai_settings, use_settings):
    use_settings(OPENAI_BASE_URL=openai_settings.base_url, OPENAI_API_KEY=OPENAI_KEY, OPENAI_MODEL="gpt-5-test")
    assert llm.get_model("gpt-5-test").provider == "openai"
    assert llm.get_model("openai/o9").prompt("x").text() == "Fake answer to: x"
    assert openai_settings.last_request.json["model"] == "o9"


def test_openai_auth_error_never_shows_the_key(openai_settings):
    openai_settings.fail_next("unauthorized", message=f"Incorrect API key provided: {OPENAI_KEY}")
    with pytest.raises(AuthenticationFailed) as info:
        llm.get_model("gpt-4o").prompt("x").text()
    assert OPENAI_KEY not in str(info.value) and "401" in str(info.value)


def test_openai_model_listing(openai_settings):
    assert llm.list_provider_models("openai") == ["gpt-3.5-turbo", "gpt-4o", "gpt-4o-mini", "llama-3-8b"]
    assert openai_settings.last_request.path == "/v1/models"
    openai_settings.fail_next("unauthorized")
    with pytest.raises(AuthenticationFailed):
        llm.list_provider_models("openai")


def test_gemini_request_shape_and_listing(gemini_server, use_settings):
    use_settings(GEMINI_API_BASE=gemini_server.url, GEMINI_API_KEY=GEMINI_KEY)
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    llm.get_model("gemini-1.5-pro").prompt("hi", system="sys", history=history, max_tokens=5, top_k=3).text()
    request = gemini_server.last_request
    assert request.path == "/v1beta/models/gemini-1.5-pro:streamGenerateContent"
    assert request.header("x-goog-api-key") == GEMINI_KEY
    assert [c["role"] for c in request.json["contents"]] == ["user", "model", "user"]
    assert request.json["systemInstruction"] == {"parts": [{"text": "sys"}]}
    assert request.json["generationConfig"] == {"maxOutputTokens": 5, "topK": 3}
    assert llm.list_provider_models("gemini") == ["gemini-1.5-pro", "gemini-1.5-flash", "gemini-2.0-flash"]
    assert llm.get_model("gemini").model_id == "gemini-2.0-flash"


def test_gemini_missing_key():
    with pytest.raises(llm.MissingKey, match="GEMINI_API_KEY"):
        llm.get_model("gemini-1.5-flash").prompt("x")


def test_inhouse_default_model_discovers_the_first_served_model(openai_server, use_settings):
    use_settings(INHOUSE_API_BASE=openai_server.url + "/v1", INHOUSE_API_KEY="inhouse-secret-key")
    assert llm.get_model("inhouse").prompt("x").text() == "Fake answer to: x"
    assert openai_server.last_request.json["model"] == "gpt-4o"  # the first one listed
    assert openai_server.last_request.header("authorization") == "Bearer inhouse-secret-key"
    assert llm.list_provider_models("inhouse") == [
        "inhouse/gpt-4o",
        "inhouse/gpt-4o-mini",
        "inhouse/gpt-3.5-turbo",
        "inhouse/llama-3-8b",
    ]
    use_settings(INHOUSE_API_BASE=openai_server.url, INHOUSE_MODEL="llama-3-8b")
    llm.get_model("inhouse").prompt("x").text()
    assert openai_server.last_request.json["model"] == "llama-3-8b"
    assert "inhouse/llama-3-8b" in [m.model_id for m in llm.get_models()]


def test_inhouse_down_is_fast_and_clear(use_settings):
    dead = closed_port_url()
    use_settings(INHOUSE_API_BASE=dead)
    start = time.monotonic()
    with pytest.raises(ProviderUnavailable) as info:
        llm.get_model("inhouse").prompt("x").text()
    assert str(info.value) == f"in-house model server unavailable at {dead}/v1"
    with pytest.raises(ProviderUnavailable, match="in-house model server unavailable"):
        llm.list_provider_models("inhouse")
    assert time.monotonic() - start < 2


def test_inhouse_not_configured():
    with pytest.raises(ProviderUnavailable, match="INHOUSE_API_BASE"):
        llm.get_model("inhouse").prompt("x").text()
    with pytest.raises(ProviderUnavailable, match="INHOUSE_API_BASE"):
        llm.list_provider_models("inhouse")
    assert llm.get_providers()["inhouse"]["configured"] is False


def test_litellm_models_come_from_settings(ollama_server, use_settings, litellm_module):
    use_settings(
        LLM_MODELS={"ollama_chat/llama3": {"api_base": ollama_server.url}}, DEFAULT_LLM_MODEL="ollama_chat/llama3"
    )
    model = llm.get_default_model()
    assert model.model_id == "ollama_chat/llama3" and model.provider == "litellm"
    assert model.prompt("hi", temperature=0.1).text() == "Fake Ollama answer to: hi"
    body = ollama_server.last_request.json
    assert ollama_server.last_request.path == "/api/chat"
    assert body["model"] == "llama3" and body["stream"] is True and body["options"] == {"temperature": 0.1}
    assert [m["content"] for m in body["messages"]] == ["hi"]
    assert llm.list_provider_models("litellm") == ["ollama_chat/llama3"]


def test_litellm_from_environment_json(ollama_server, monkeypatch, litellm_module):
    monkeypatch.setenv("LLM_MODELS", json.dumps({"ollama_chat/llama3": {"api_base": ollama_server.url}}))
    assert llm.get_model("ollama_chat/llama3").prompt("env").text() == "Fake Ollama answer to: env"
