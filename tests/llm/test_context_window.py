"""Each provider's own "prompt longer than the context window" error becomes ContextWindowExceeded (the failure a
fallback chain may move on for), through the providers' real exception classes."""

from webapp.llm.errors import BadRequest, ContextWindowExceeded
from webapp.llm.providers.litellm import translate_litellm_error


def test_litellm_context_window_exceeded_error():
    import litellm

    error = litellm.ContextWindowExceededError(
        message="This model's maximum context length is 8192 tokens.", model="llama3", llm_provider="ollama"
    )
    assert isinstance(translate_litellm_error(error, "ollama_chat/llama3", "127.0.0.1"), ContextWindowExceeded)


def test_litellm_other_bad_requests_stay_bad_requests():
    import litellm

    error = litellm.BadRequestError(message="temperature must be below 2", model="llama3", llm_provider="ollama")
    translated = translate_litellm_error(error, "ollama_chat/llama3", "127.0.0.1")
    assert isinstance(translated, BadRequest) and not isinstance(translated, ContextWindowExceeded)
