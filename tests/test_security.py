import logging

from tests.support.forms import csrf_token
from webapp.logs import ContextFilter, request_id_var


def test_session_cookie_is_secure_over_https_only(client, app):
    token = csrf_token(client, "/auth/signup")
    data = {"username": "carol", "password": "correct horse", "confirm": "correct horse", "csrf_token": token}
    plain = client.post("/auth/signup", data=data)
    assert "Secure" not in plain.headers["Set-Cookie"]
    https_client = app.test_client()
    token = csrf_token(https_client, "/auth/signup")
    data.update(username="dave", csrf_token=token)
    secure = https_client.post("/auth/signup", data=data, base_url="https://localhost")
    assert "Secure" in secure.headers["Set-Cookie"]
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_forwarded_proto_is_honoured_only_from_configured_proxies(instance_path, app_config):
    from webapp import create_app

    for proxies, expected_secure in [(0, False), (1, True)]:
        app = create_app({**app_config, "TRUSTED_PROXIES": proxies})
        client = app.test_client()
        response = client.get("/auth/login", headers={"X-Forwarded-Proto": "https"})
        assert ("Strict-Transport-Security" in response.headers) == expected_secure


def test_log_lines_carry_ids_and_never_secrets(caplog):
    from webapp.llm.errors import remember_secret

    remember_secret("sk-verysecretkey1234567890")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling with %s", ("sk-verysecretkey1234567890",), None)
    token = request_id_var.set("req-42")
    try:
        ContextFilter().filter(record)
    finally:
        request_id_var.reset(token)
    assert record.request_id == "req-42"
    assert "sk-verysecretkey" not in record.getMessage()
