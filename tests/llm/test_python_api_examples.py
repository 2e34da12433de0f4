"""Every example of the Python API document, against the fake OpenAI server
(gpt-3.5-turbo) and against the offline echo model."""

import pytest

import webapp.llm as llm
from tests.support.api import OPENAI_KEY


def test_basic_prompt_execution(openai_server, use_settings):
    use_settings(OPENAI_BASE_URL=openai_server.base_url)
    model = llm.get_model("gpt-3.5-turbo")
    model.key = "YOUR_API_KEY_HERE"
    response = model.prompt("Five surprising names for a pet pelican")
    assert response.text() == "Fake answer to: Five surprising names for a pet pelican"
    assert str(response) == response.text()
    request = openai_server.last_request
    assert request.header("authorization") == "Bearer YOUR_API_KEY_HERE"
    assert request.json["model"] == "gpt-3.5-turbo"
    assert request.json["messages"] == [{"role": "user", "content": "Five surprising names for a pet pelican"}]


def test_chatgpt_alias_works_too(openai_settings):
    model = llm.get_model("chatgpt")
    assert model.model_id == "gpt-3.5-turbo"
    assert "pelican" in str(model.prompt("pelican"))
    assert openai_settings.last_request.json["model"] == "gpt-3.5-turbo"


def test_key_from_environment_lets_you_omit_model_key(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    response = llm.get_model("gpt-3.5-turbo").prompt("Five surprising names for a pet pelican")
    assert response.text().endswith("pet pelican")
    assert openai_server.last_request.header("authorization") == f"Bearer {OPENAI_KEY}"


def test_invalid_model_name_raises_unknown_model_error():
    with pytest.raises(llm.UnknownModelError) as info:
        llm.get_model("gpt-3.5-turbo-nonsense")
    assert isinstance(info.value, KeyError)
    assert "gpt-3.5-turbo" in str(info.value)  # suggests the closest id


def test_system_prompt(openai_settings):
    model = llm.get_model("gpt-3.5-turbo")
    response = model.prompt("Five surprising names for a pet pelican", system="Answer like GlaDOS")
    response.text()
    assert openai_settings.last_request.json["messages"] == [
        {"role": "system", "content": "Answer like GlaDOS"},
        {"role": "user", "content": "Five surprising names for a pet pelican"},
    ]


def test_model_options(openai_settings):
    model = llm.get_model("gpt-3.5-turbo")
    model.key = "... key here ..."
    assert str(model.prompt("Names for otters", temperature=0.2)).endswith("Names for otters")
    body = openai_settings.last_request.json
    assert body["temperature"] == 0.2
    assert "max_tokens" not in body  # options left unset are not sent


def test_models_without_a_key_need_no_key_line():
    model = llm.get_model("echo")
    assert model.needs_key is False
    assert (
        model.prompt("Five surprising names for a pet pelican").text()
        == "Echo (offline model): Five surprising names for a pet pelican"
    )


@pytest.mark.parametrize("model_name", ["gpt-3.5-turbo", "echo"])
def test_streaming_responses(openai_settings, model_name):
    response = llm.get_model(model_name).prompt("Five diabolical names for a pet goat")
    chunks = [chunk for chunk in response]
    assert len(chunks) > 3
    assert "".join(chunks).endswith("Five diabolical names for a pet goat")
    # Once evaluated, text() keeps returning the same string without another request.
    count = len(openai_settings.requests)
    assert response.text() == "".join(chunks)
    assert list(response) == chunks
    assert len(openai_settings.requests) == count


def test_conversation(openai_settings):
    model = llm.get_model("gpt-3.5-turbo")
    model.key = "YOUR_API_KEY_HERE"
    conversation = model.conversation()
    response = conversation.prompt("Five fun facts about pelicans")
    assert response.text() == "Fake answer to: Five fun facts about pelicans"
    response2 = conversation.prompt("Now do skunks")
    assert response2.text() == "Fake answer to: Now do skunks"
    assert openai_settings.last_request.json["messages"] == [
        {"role": "user", "content": "Five fun facts about pelicans"},
        {"role": "assistant", "content": "Fake answer to: Five fun facts about pelicans"},
        {"role": "user", "content": "Now do skunks"},
    ]
    assert conversation.responses == [response, response2]


def test_echo_conversation_sends_history():
    conversation = llm.get_model("echo").conversation()
    conversation.prompt("first").text()
    second = conversation.prompt("second")
    assert second.prompt.messages()[:2] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Echo (offline model): first"},
    ]
    assert second.text() == "Echo (offline model): second"


def test_set_alias_and_remove_alias(llm_instance):
    llm.set_alias("turbo", "gpt-3.5-turbo")
    assert llm.get_model("turbo").model_id == "gpt-3.5-turbo"
    llm.set_alias("turbo2", "chatgpt")  # an alias as the target resolves to its model id
    assert llm.get_aliases()["turbo2"] == "gpt-3.5-turbo"
    llm.remove_alias("turbo")
    with pytest.raises(llm.UnknownModelError):
        llm.get_model("turbo")
    with pytest.raises(KeyError):
        llm.remove_alias("turbo")
