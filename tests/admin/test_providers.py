"""Provider settings: keys encrypted at rest, never shown, logged or passed to jobs; base URLs and on/off take effect."""

import logging

from sqlalchemy import select, text

from tests.fakes import FakeOpenAIServer
from tests.support.admin import make_user, post, save_models, save_provider
from tests.support.chat import send
from webapp import site_settings
from webapp.extensions import db
from webapp.llm import get_model
from webapp.models import AuditEvent, Generation, ProviderSetting
from webapp.queue import get_queue, get_redis

KEY = "sk-test-5ecret-Zq81xP0wLm4321"


def all_pages(client):
    paths = [
        "/admin/",
        "/admin/providers",
        "/admin/models",
        "/admin/users",
        "/admin/usage",
        "/admin/audit",
        "/admin/usage.csv",
        "/admin/users/1",
        "/chat/",
    ]
    return {path: client.get(path).get_data(as_text=True) for path in paths}


def redis_dump(app) -> bytes:
    with app.app_context():
        connection = get_redis()
        blob = b""
        for key in connection.keys("*"):
            kind = connection.type(key)
            if kind == b"string":
                blob += connection.get(key) or b""
            elif kind == b"hash":
                blob += b"".join(k + v for k, v in connection.hgetall(key).items())
            elif kind == b"list":
                blob += b"".join(connection.lrange(key, 0, -1))
            elif kind == b"stream":
                blob += repr(connection.xrange(key)).encode()
        return blob


def test_key_is_encrypted_at_rest_and_never_shown(app, client, admin):
    response = save_provider(client, "openai", api_key=KEY)
    assert response.status_code == 302
    with app.app_context():
        raw = db.session.execute(text("SELECT * FROM provider_settings")).all()
        assert raw and KEY not in repr(raw)
        assert KEY[-4:] in repr(raw)  # only the hint
        row = db.session.get(ProviderSetting, "openai")
        assert site_settings.decrypt_key(row.api_key_encrypted) == KEY
        assert site_settings.stored_key("openai") == KEY
        events = db.session.scalars(select(AuditEvent)).all()
        assert events and all(KEY not in repr((e.before, e.after)) for e in events)
    page = client.get("/admin/providers").get_data(as_text=True)
    assert "set, ends in …4321" in page
    for path, body in all_pages(client).items():
        assert KEY not in body, path


def test_key_survives_only_with_the_same_secret(app, admin, client):
    save_provider(client, "openai", api_key=KEY)
    with app.app_context():
        token = db.session.get(ProviderSetting, "openai").api_key_encrypted
        app.config["SECRET_KEY"] = "another secret"
        assert site_settings.decrypt_key(token) is None


def test_blank_key_keeps_the_stored_one_and_clear_removes_it(app, client, admin):
    save_provider(client, "openai", api_key=KEY)
    save_provider(client, "openai", base_url="http://127.0.0.1:9/v1")
    with app.app_context():
        assert site_settings.stored_key("openai") == KEY
    save_provider(client, "openai", clear_key=True)
    with app.app_context():
        site_settings.invalidate()
        assert site_settings.stored_key("openai") is None
    assert "not set" in client.get("/admin/providers").get_data(as_text=True)


def test_invalid_base_url_is_refused(client, admin):
    response = save_provider(client, "openai", base_url="not a url")
    assert response.status_code == 400
    assert "Enter a full URL" in response.get_data(as_text=True)


def test_connection_test_runs_a_real_request_in_a_job(app, client, admin, run_jobs, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(require_key=KEY) as server:
        save_provider(client, "openai", base_url=server.base_url, api_key=KEY)
        response = post(client, "/admin/providers/openai/test", page="/admin/providers")
        assert response.status_code == 302
        with app.app_context():
            jobs = get_queue().jobs
            assert [job.args for job in jobs] == [("openai",)]
            assert not jobs[0].kwargs
        page = client.get("/admin/providers").get_data(as_text=True)
        assert "Testing…" in page and '<meta http-equiv="refresh"' in page
        assert KEY.encode() not in redis_dump(app)

        run_jobs()
        assert server.last_request.header("authorization") == f"Bearer {KEY}"
        page = client.get("/admin/providers").get_data(as_text=True)
        assert "Connection OK" in page and "gpt-4o" in page
        assert '<meta http-equiv="refresh"' not in page

        # A wrong key: the provider's error is shown, and the key is not.
        save_provider(client, "openai", base_url=server.base_url, api_key="sk-wrong-key-000000000000")
        post(client, "/admin/providers/openai/test", page="/admin/providers")
        run_jobs()
        page = client.get("/admin/providers").get_data(as_text=True)
        assert "Connection failed" in page and "rejected the API key" in page
        assert "sk-wrong-key-000000000000" not in page
    assert KEY.encode() not in redis_dump(app)
    assert KEY not in caplog.text
    assert "sk-wrong-key-000000000000" not in caplog.text


def test_connection_test_without_key_says_so(app, client, admin, run_jobs):
    post(client, "/admin/providers/gemini/test", page="/admin/providers")
    run_jobs()
    assert "No API key is set." in client.get("/admin/providers").get_data(as_text=True)


def test_stored_key_and_base_url_reach_the_worker(app, client, admin, run_jobs, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(require_key=KEY) as server:
        save_provider(client, "openai", base_url=server.base_url, api_key=KEY)
        save_models(client, enabled=["echo", "gpt-4o"], default="gpt-4o")
        send(client, "hello through the admin key")
        with app.app_context():
            job = get_queue().jobs[0]
            assert KEY not in repr(job.args) + repr(job.kwargs)
        run_jobs()
        with app.app_context():
            generation = db.session.scalar(select(Generation))
            assert generation.status == "succeeded", generation.error
            assert generation.model_id == "gpt-4o"
            assert "Fake answer to: hello through the admin key" in generation.text
        assert server.last_request.header("authorization") == f"Bearer {KEY}"
    for path, body in all_pages(client).items():
        assert KEY not in body, path
    assert KEY not in caplog.text
    assert KEY.encode() not in redis_dump(app)


def test_disabled_provider_is_refused_in_the_llm_layer(app, client, admin):
    save_provider(client, "echo", enabled=False)
    with app.app_context():
        try:
            get_model("echo").prompt("hi")
        except Exception as exc:
            assert "turned off" in str(exc)
        else:
            raise AssertionError("a disabled provider answered")
    save_provider(client, "echo", enabled=True)
    with app.app_context():
        assert "hi" in get_model("echo").prompt("hi").text()


def test_plain_user_cannot_save_provider_settings(app, client, auth):
    make_user(app, "bob")
    auth.login("bob")
    response = post(client, "/admin/providers/openai", {"openai-api_key": KEY}, page="/chat/")
    assert response.status_code == 403
    with app.app_context():
        assert db.session.get(ProviderSetting, "openai") is None


def test_echo_connection_test_sends_a_prompt(app, client, admin, run_jobs):
    post(client, "/admin/providers/echo/test", page="/admin/providers")
    run_jobs()
    page = client.get("/admin/providers").get_data(as_text=True)
    assert "Connection OK" in page and "echo answered" in page


def test_stored_settings_only_apply_inside_the_app(app, client, admin):
    save_provider(client, "openai", base_url="http://127.0.0.1:9/v1", api_key=KEY)
    from webapp.llm import config

    with app.app_context():
        assert config.setting("OPENAI_BASE_URL") == "http://127.0.0.1:9/v1"
        assert config.resolve_key("openai", "OPENAI_API_KEY") == KEY
    assert config.setting("OPENAI_BASE_URL") is None  # plain scripts: configuration only
    assert config.resolve_key("openai", "OPENAI_API_KEY") is None
