"""Model lookup, options, keys, responses (laziness, caching, timing, usage, close)."""

import sys
import threading
import time

import pytest

import webapp.llm as llm
from tests.support.api import OPENAI_KEY
from webapp.llm.errors import InvalidOptions, LLMError, MissingKey


def test_get_model_returns_fresh_instances():
    first, second = llm.get_model("gpt-4o"), llm.get_model("4o")
    first.key = "sk-only-for-first"
    assert first is not second and second.key is None
    assert second.model_id == "gpt-4o" and second.provider == "openai"


def test_model_class_attributes():
    model = llm.get_model("echo")
    assert (model.model_id, model.provider, model.label) == ("echo", "echo", "Echo (offline test model)")
    assert model.needs_key is False and model.key_env_var is None and model.can_stream is True
    openai_model = llm.get_model("gpt-4o")
    assert openai_model.needs_key and openai_model.key_env_var == "OPENAI_API_KEY"
    assert "4o" in openai_model.aliases
    assert openai_model.Options.model_config["extra"] == "forbid"


def test_get_models_lists_each_id_once():
    ids = [m.model_id for m in llm.get_models()]
    assert len(ids) == len(set(ids))
    assert {"echo", "gpt-4o", "gpt-3.5-turbo", "gemini-1.5-pro", "inhouse"} <= set(ids)


@pytest.mark.slow  # starts a process
def test_importing_the_api_does_not_import_sdks():
    import subprocess

    code = (
        "import sys, webapp.llm as llm; llm.get_models(); llm.get_model('echo').prompt('x').text();"
        "print(sorted(m for m in ('openai', 'litellm', 'google.generativeai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_default_model_setting_and_fallback(use_settings):
    assert llm.get_default_model().model_id == "echo"
    use_settings(DEFAULT_LLM_MODEL="4o")
    assert llm.get_default_model().model_id == "gpt-4o"
    use_settings(DEFAULT_LLM_MODEL="no-such-model")
    assert llm.get_default_model().model_id == "echo"


def test_unknown_model_message_names_closest_ids():
    with pytest.raises(llm.UnknownModelError) as info:
        llm.get_model("gpt-4-o")
    message = str(info.value)
    assert "gpt-4-o" in message and "'gpt-4o'" in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, LLMError)
    assert info.value.code == "unknown_model"


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temprature": 0.5}, "unknown option 'temprature'"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_invalid_options_fail_before_any_request(openai_settings, options, fragment):
    with pytest.raises(InvalidOptions) as info:
        llm.get_model("gpt-3.5-turbo").prompt("hi", **options)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
    assert openai_settings.requests == []


def test_string_option_values_are_converted(openai_settings):
    llm.get_model("gpt-4o").prompt("hi", temperature="0.5", max_tokens="12").text()
    body = openai_settings.last_request.json
    assert body["temperature"] == 0.5 and body["max_tokens"] == 12


def test_echo_options():
    with pytest.raises(InvalidOptions):
        llm.get_model("echo").prompt("x", delay=6)
    with pytest.raises(InvalidOptions):
        llm.get_model("echo").prompt("x", temperature=1)
    start = time.monotonic()
    assert llm.get_model("echo").prompt("a b c", delay=0.05).text().endswith("a b c")
    assert time.monotonic() - start >= 0.15  # three delays between four chunks


def test_missing_key_names_the_variable(openai_server, use_settings):
    use_settings(OPENAI_BASE_URL=openai_server.base_url)
    with pytest.raises(MissingKey) as info:
        llm.get_model("gpt-4o").prompt("hi")
    assert "OPENAI_API_KEY" in str(info.value)
    assert openai_server.requests == []


def test_key_precedence(openai_server, use_settings):
    use_settings(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-from-config-0001")
    seen = []

    def resolver(provider):
        seen.append(provider)
        return "sk-from-resolver-0002" if provider == "openai" else None

    def sent_key(model):
        model.prompt("hi").text()
        return openai_server.last_request.header("authorization").removeprefix("Bearer ")

    assert sent_key(llm.get_model("gpt-4o")) == "sk-from-config-0001"
    llm.configure(key_resolver=resolver)
    assert sent_key(llm.get_model("gpt-4o")) == "sk-from-resolver-0002"
    assert seen == ["openai"]
    model = llm.get_model("gpt-4o")
    model.key = "sk-explicit-0003"
    assert sent_key(model) == "sk-explicit-0003"
    llm.configure(key_resolver=lambda provider: None)  # resolver has nothing: fall back to config
    assert sent_key(llm.get_model("gpt-4o")) == "sk-from-config-0001"


def test_response_is_lazy(openai_settings):
    response = llm.get_model("gpt-4o").prompt("hi")
    assert openai_settings.requests == []
    assert not response.done
    response.text()
    assert len(openai_settings.chat_requests) == 1 and response.done


def test_usage_and_timings_from_provider(openai_settings):
    response = llm.get_model("gpt-4o").prompt("one two three")
    response.text()
    assert response.usage == llm.Usage(input_tokens=3, output_tokens=6)
    assert response.usage.estimated is False
    assert response.duration_ms >= response.first_chunk_ms >= 0


def test_usage_is_estimated_when_provider_gives_none():
    from webapp.llm.prompts import estimate_tokens

    class Quiet(llm.Model):
        model_id = "quiet"
        provider = "test"

        def execute(self, prompt, stream, response, conversation):
            yield "abcdefgh"

    quiet = Quiet().prompt("12345678")
    assert quiet.text() == "abcdefgh"
    assert quiet.usage.estimated and quiet.usage.output_tokens == estimate_tokens("abcdefgh") == 2
    assert quiet.usage.input_tokens == 2


def test_history_is_sent_before_the_prompt(openai_settings):
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    llm.get_model("gpt-4o").prompt("And now?", system="Be nice", history=history).text()
    assert openai_settings.last_request.json["messages"] == [
        {"role": "system", "content": "Be nice"},
        *history,
        {"role": "user", "content": "And now?"},
    ]


def test_bad_history_is_rejected():
    with pytest.raises(InvalidOptions):
        llm.get_model("echo").prompt("x", history=[{"role": "system", "content": "nope"}])


def test_close_stops_the_stream_and_the_connection(openai_server, use_settings):
    use_settings(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY=OPENAI_KEY)
    openai_server.tokens_per_second = 50
    openai_server.queue_reply(" ".join(f"word{i}" for i in range(200)))  # four seconds of streaming
    try:
        response = llm.get_model("gpt-4o").prompt("long please")
        iterator = iter(response)
        first = next(iterator)
        start = time.monotonic()
        response.close()
        assert openai_server.disconnected.wait(3), "the server never noticed the client leave"
        assert time.monotonic() - start < 2
        assert list(iterator) == []
        assert response.text() == first  # what arrived before the stop
        assert list(response) == [first]
    finally:
        openai_server.tokens_per_second = None


def test_close_from_another_thread_stops_echo():
    response = llm.get_model("echo").prompt("a " * 100, delay=0.5)
    chunks = []
    got_first = threading.Event()

    def consume():
        for chunk in response:
            chunks.append(chunk)
            got_first.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert got_first.wait(5)
    start = time.monotonic()
    response.close()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - start < 3  # against 50 s if it went on
    assert chunks == ["Echo (offline model): "]


def test_non_streaming_prompt(openai_settings):
    response = llm.get_model("gpt-4o").prompt("whole", stream=False)
    assert list(response) == ["Fake answer to: whole"]
    assert openai_settings.last_request.json.get("stream") in (None, False)


def test_error_classes_contract():
    from webapp.llm import errors

    assert errors.RateLimited(retry_after=3).retryable and errors.RateLimited(retry_after=3).retry_after == 3
    assert errors.RateLimited().code == "rate_limited"
    assert errors.ProviderUnavailable().retryable and errors.ProviderTimeout().retryable
    assert not errors.AuthenticationFailed().retryable and not errors.BadRequest().retryable
    assert errors.ContentCutOff(partial_text="ab").partial_text == "ab"
    assert not errors.ContentCutOff(reason="length").retryable
    assert not errors.MissingKey().retryable
    assert issubclass(errors.InvalidOptions, ValueError)
    message = str(errors.AuthenticationFailed("Incorrect API key provided: sk-abcdefghijklmnop1234"))
    assert "sk-abcdefghijklmnop1234" not in message and "[redacted]" in message


def test_providers_listing(use_settings, openai_server):
    use_settings(OPENAI_BASE_URL=openai_server.base_url)
    providers = llm.get_providers()
    assert set(providers) >= {"echo", "openai", "gemini", "inhouse", "litellm"}
    assert providers["openai"]["configured"] is False and providers["echo"]["configured"] is True
    assert "gpt-4o" in providers["openai"]["models"]
    # Without a key, OpenAI and Gemini fall back to the static lists without any request.
    assert "gpt-4o" in llm.list_provider_models("openai")
    assert "gemini-1.5-pro" in llm.list_provider_models("gemini")
    assert openai_server.requests == []
    with pytest.raises(KeyError):
        llm.list_provider_models("nope")


def test_entry_point_plugins_are_loaded(tmp_path):
    """A third-party distribution registering a provider via switchboard.providers."""
    dist = tmp_path / "plugins"
    (dist / "sb_fake_plugin-1.0.dist-info").mkdir(parents=True)
    (dist / "sb_fake_plugin-1.0.dist-info" / "METADATA").write_text("Name: sb-fake-plugin\nVersion: 1.0\n")
    (dist / "sb_fake_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[switchboard.providers]\nshout = sb_fake_plugin\n"
    )
    (dist / "sb_fake_plugin.py").write_text(
        "from webapp.llm import Model\n"
        "class Shout(Model):\n"
        "    model_id = 'shout'\n    provider = 'shout'\n    label = 'Shout'\n    aliases = ('loud',)\n"
        "    def execute(self, prompt, stream, response, conversation):\n"
        "        yield prompt.prompt.upper()\n"
        "def register(registry):\n"
        "    registry.add_provider('shout', 'Shouting')\n"
        "    registry.add_model(Shout)\n"
    )
    sys.path.insert(0, str(dist))
    llm.configure(None)  # new registry generation
    try:
        assert llm.get_model("loud").prompt("hey").text() == "HEY"
        assert "shout" in llm.get_providers()
    finally:
        sys.path.remove(str(dist))
        sys.modules.pop("sb_fake_plugin", None)
        llm.configure(None)
    with pytest.raises(llm.UnknownModelError):
        llm.get_model("shout")


def test_overrides_hook_wins_over_settings(openai_server, use_settings):
    """configure(overrides=fn): admin-stored values (base URL, default model, disabled providers)."""
    use_settings(OPENAI_BASE_URL="http://127.0.0.1:9/v1", OPENAI_API_KEY=OPENAI_KEY)
    values = {"OPENAI_BASE_URL": openai_server.base_url, "DEFAULT_LLM_MODEL": "3.5"}
    llm.configure(overrides=values.get)
    try:
        assert llm.get_default_model().model_id == "gpt-3.5-turbo"
        assert llm.get_model("gpt-4o").prompt("via override").text() == "Fake answer to: via override"
        from webapp.llm import config

        assert config.provider_enabled("openai")
        values["LLM_DISABLED_PROVIDERS"] = ["openai", "gemini"]
        assert not config.provider_enabled("openai") and config.provider_enabled("echo")
        assert llm.get_providers()["openai"]["enabled"] is False
    finally:
        llm.configure(overrides=None)
    assert llm.get_default_model().model_id == "echo"


def test_cli_group_is_exported_as_llm_cli():
    from webapp.llm.cli import llm as group
    from webapp.llm.cli import llm_cli

    assert llm_cli is group and llm_cli.name == "llm"
