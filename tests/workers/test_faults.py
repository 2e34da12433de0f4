"""Provider faults seen through the worker: retried when transient (backoff, Retry-After),
recorded as attempts, and ending in a clear error that keeps the partial text."""

import pytest
from sqlalchemy import select

from tests.fakes import FakeGeminiServer, FakeOllamaServer, FakeOpenAIServer, closed_port_url
from tests.support.chat import send
from webapp import create_app
from webapp.extensions import db
from webapp.models import Generation, User
from webapp.queue import get_redis

KEY = "sk-test-secret-key-0123456789"


def provider_settings(kind, url):
    if kind == "openai":
        return {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": url + "/v1"}, "gpt-3.5-turbo"
    if kind == "gemini":
        return {"GEMINI_API_KEY": "AIzaFakeKey0123456789abcdef", "GEMINI_API_BASE": url}, "gemini-1.5-flash"
    return {"LLM_MODELS": {"ollama_chat/llama3": {"api_base": url}}}, "ollama_chat/llama3"


@pytest.fixture
def make_app(instance_path, app_config):
    apps = []

    def make(settings):
        # A roomy timeout (the box may be busy); the timeout test sets a short one.
        app = create_app({**app_config, "LLM_REQUEST_TIMEOUT": 5.0, "RETRY_BACKOFF_BASE": 0.01, **settings})
        with app.app_context():
            db.drop_all()
            db.create_all()
            get_redis().flushdb()
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def chat_once(app, model_id, text="How is the weather on Venus?"):
    """Sign up, pick the model, send one message, run the job in a real RQ worker; the generation."""
    from tests.support.accounts import AuthActions
    from tests.support.queue import run_queued_jobs

    client = app.test_client()
    AuthActions(client).signup()
    with app.app_context():
        user = db.session.scalar(select(User))
        user.default_model = model_id
        db.session.commit()
    send(client, text)
    run_queued_jobs(app)
    with app.app_context():
        return db.session.scalar(select(Generation).order_by(Generation.id.desc()))


SERVERS = {"openai": FakeOpenAIServer, "gemini": FakeGeminiServer, "ollama": FakeOllamaServer}


@pytest.mark.parametrize("kind", ["openai", "gemini", "ollama"])
def test_transient_errors_are_retried_then_succeed(make_app, kind):
    with SERVERS[kind]() as server:
        settings, model_id = provider_settings(kind, server.url)
        app = make_app(settings)
        server.fail_next("unavailable", path="enerateContent" if kind == "gemini" else "chat")
        generation = chat_once(app, model_id)
    assert generation.status == "succeeded", generation.error
    assert generation.attempts == 2
    assert "Venus" in generation.text


@pytest.mark.parametrize("kind", ["openai", "gemini", "ollama"])
def test_a_stream_cut_half_way_keeps_the_partial_text(make_app, kind):
    with SERVERS[kind](reply="one two three four five six seven eight nine ten") as server:
        settings, model_id = provider_settings(kind, server.url)
        app = make_app(settings)
        server.fail_next("cut", after=3, path="enerateContent" if kind == "gemini" else "chat")
        generation = chat_once(app, model_id)
    assert generation.status == "failed"
    assert generation.text and "one" in generation.text and "ten" not in generation.text
    assert generation.attempts == 1  # no retry once text has streamed: it would repeat it
    assert generation.error and KEY not in generation.error


def test_rate_limit_honours_retry_after(make_app):
    with FakeOpenAIServer() as server:
        app = make_app(provider_settings("openai", server.url)[0])
        server.fail_next("rate_limit", retry_after=1, path="chat")
        generation = chat_once(app, "gpt-3.5-turbo")
        first, second = server.chat_requests[0], server.chat_requests[1]
    assert generation.status == "succeeded" and generation.attempts == 2
    assert len([r for r in server.requests if r.path.endswith("/chat/completions")]) == 2
    assert first is not second


def test_persistent_server_errors_give_up_after_the_last_attempt(make_app):
    with FakeOpenAIServer() as server:
        app = make_app(provider_settings("openai", server.url)[0])
        server.fail_next("server_error", times=5, path="chat")
        generation = chat_once(app, "gpt-3.5-turbo")
        assert len(server.chat_requests) == 3
    assert generation.status == "failed" and generation.attempts == 3
    assert generation.error_code == "provider_unavailable"


def test_rate_limited_without_retry_after_uses_backoff(make_app):
    with FakeOpenAIServer() as server:
        app = make_app(provider_settings("openai", server.url)[0])
        server.fail_next("rate_limit", retry_after=None, times=5, path="chat")
        generation = chat_once(app, "gpt-3.5-turbo")
    assert generation.status == "failed" and generation.error_code == "rate_limited"
    assert generation.attempts == 3


def test_authentication_failure_is_not_retried_and_names_no_key(make_app):
    with FakeOpenAIServer(require_key="sk-the-right-key-999999") as server:
        app = make_app(provider_settings("openai", server.url)[0])
        generation = chat_once(app, "gpt-3.5-turbo")
        assert len(server.chat_requests) == 1
    assert generation.status == "failed" and generation.error_code == "authentication_failed"
    assert KEY not in generation.error and "sk-the-right" not in generation.error


def test_read_timeout_fails_in_bounded_time(make_app):
    with FakeOpenAIServer() as server:
        app = make_app({**provider_settings("openai", server.url)[0], "LLM_REQUEST_TIMEOUT": 0.5})
        server.fail_next("timeout", times=5, path="chat")
        generation = chat_once(app, "gpt-3.5-turbo")
    assert generation.status == "failed" and generation.error_code == "provider_timeout"
    assert generation.attempts == 3


def test_refused_connection_is_a_clear_unavailable_error(make_app):
    app = make_app(provider_settings("openai", closed_port_url())[0])
    generation = chat_once(app, "gpt-3.5-turbo")
    assert generation.status == "failed" and generation.error_code == "provider_unavailable"
    assert "unavailable" in generation.error.lower()


def test_malformed_json_is_a_clear_error(make_app):
    with FakeOpenAIServer() as server:
        app = make_app(provider_settings("openai", server.url)[0])
        server.fail_next("malformed", times=5, path="chat")
        generation = chat_once(app, "gpt-3.5-turbo")
    assert generation.status == "failed"
    assert "malformed" in generation.error.lower()
