import logging

from tests.conftest import csrf_token
from webapp.observability import ContextFilter, request_id_var


def test_login_is_throttled_per_username(client, auth, app):
    app.config["LOGIN_MAX_FAILURES"] = 3
    auth.signup("alice")
    auth.logout()
    for _ in range(3):
        assert "Wrong username or password." in auth.login("alice", "wrong").get_data(as_text=True)
    blocked = auth.login("alice", "correct horse")  # even the right password waits
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in blocked.get_data(as_text=True)
    assert client.get("/chat/").status_code == 302


def test_login_is_throttled_per_address_across_usernames(client, auth, app):
    app.config["LOGIN_MAX_FAILURES"] = 1  # 5 per address
    for name in ["u1", "u2", "u3", "u4", "u5"]:
        auth.login(name, "whatever")
    assert auth.login("u6", "whatever").status_code == 429


def test_success_clears_the_username_counter(client, auth, app):
    app.config["LOGIN_MAX_FAILURES"] = 3
    auth.signup("bob")
    auth.logout()
    auth.login("bob", "wrong")
    auth.login("bob", "wrong")
    assert auth.login("bob").status_code == 302
    auth.logout()
    auth.login("bob", "wrong")
    auth.login("bob", "wrong")
    assert auth.login("bob").status_code == 302


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
