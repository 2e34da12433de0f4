"""Tokens and API keys: what authorizes an API call, and the 401s (always JSON, OpenAI's shape)."""

import base64
import json
import time

import jwt
import pytest

from tests.support.api import PASSWORD, USERNAME, bearer, http
from webapp.accounts import sessions
from webapp.api import tokens
from webapp.extensions import db
from webapp.models import ApiKey, User


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assert_error(reply, status, code=None):
    assert reply.status == status, reply.text
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    error = reply.json["error"]
    assert set(error) >= {"message", "type", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def models(server, token):
    return http("GET", f"{server}/api/supported-models/?provider=echo", headers=bearer(token))


def test_token_pair_has_pinned_algorithm_and_claims(app, server, user):
    pair = http("POST", f"{server}/api/token/", {"username": USERNAME, "password": PASSWORD}).json
    for kind in ("access", "refresh"):
        header = jwt.get_unverified_header(pair[kind])
        claims = jwt.decode(pair[kind], options={"verify_signature": False})
        assert header["alg"] == "HS256"
        assert claims["type"] == kind and claims["sub"] == str(user) and claims["exp"] > claims["iat"]
    access = jwt.decode(pair["access"], options={"verify_signature": False})
    refresh = jwt.decode(pair["refresh"], options={"verify_signature": False})
    assert access["exp"] - access["iat"] == 15 * 60
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600
    assert models(server, pair["access"]).status == 200


def test_token_lifetimes_are_configurable(app, server, user):
    app.config.update(JWT_ACCESS_MINUTES=1, JWT_REFRESH_DAYS=2)
    pair = http("POST", f"{server}/api/token/", {"username": USERNAME, "password": PASSWORD}).json
    access = jwt.decode(pair["access"], options={"verify_signature": False})
    refresh = jwt.decode(pair["refresh"], options={"verify_signature": False})
    assert access["exp"] - access["iat"] == 60 and refresh["exp"] - refresh["iat"] == 2 * 24 * 3600


@pytest.mark.parametrize(
    "body", [{"username": USERNAME, "password": "wrong password"}, {"username": "nobody", "password": PASSWORD}]
)
def test_wrong_credentials_are_401(server, user, body):
    error = assert_error(http("POST", f"{server}/api/token/", body), 401, "invalid_credentials")
    assert error["type"] == "authentication_error"


def test_missing_fields_are_400_per_field(server):
    reply = http("POST", f"{server}/api/token/", {"username": USERNAME})
    assert_error(reply, 400, "invalid_fields")
    assert reply.json["password"] == ["This field is required."]
    reply = http("POST", f"{server}/api/token/refresh/", {})
    assert_error(reply, 400)
    assert reply.json["refresh"] == ["This field is required."]
    assert_error(http("POST", f"{server}/api/token/", raw=b"not json", headers={"Content-Type": "text/plain"}), 400)


def forge(app, template: str, **changes):
    """A token signed like the server's, with the claims of ``template`` (its family) and ``changes``."""
    with app.app_context():
        now = int(time.time())
        claims = {**jwt.decode(template, options={"verify_signature": False}), "iat": now, "exp": now + 60}
        claims.update(changes)
        return jwt.encode(claims, tokens._signing_key(), algorithm="HS256")


def test_expired_tampered_and_unsigned_tokens_are_401(app, server, user, access_token):
    assert models(server, forge(app, access_token)).status == 200  # the forger signs like the server
    error = assert_error(
        models(server, forge(app, access_token, iat=int(time.time()) - 120, exp=int(time.time()) - 60)),
        401,
        "token_not_valid",
    )
    # Signed correctly but naming no sign-in of ours (or another user's): refused.
    assert_error(models(server, forge(app, access_token, sid="made-up")), 401, "token_not_valid")
    assert_error(models(server, forge(app, access_token, sub="999")), 401, "token_not_valid")
    no_family = {k: v for k, v in jwt.decode(access_token, options={"verify_signature": False}).items() if k != "sid"}
    with app.app_context():
        assert_error(
            models(server, jwt.encode(no_family, tokens._signing_key(), algorithm="HS256")), 401, "token_not_valid"
        )
    assert "expired" in error["message"]

    header, payload, signature = access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "999"
    assert_error(models(server, ".".join([header, b64(claims), signature])), 401, "token_not_valid")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert_error(models(server, ".".join([header, payload, flipped])), 401, "token_not_valid")

    unsigned = b64({"alg": "none", "typ": "JWT"}) + "." + payload + "."
    assert_error(models(server, unsigned), 401, "token_not_valid")
    with app.app_context():
        other_alg = jwt.encode(
            jwt.decode(access_token, options={"verify_signature": False}), tokens._signing_key(), algorithm="HS512"
        )
    assert_error(models(server, other_alg), 401, "token_not_valid")
    assert_error(models(server, "not-a-token"), 401, "token_not_valid")


def test_token_types_are_not_interchangeable(server, user):
    pair = http("POST", f"{server}/api/token/", {"username": USERNAME, "password": PASSWORD}).json
    assert_error(models(server, pair["refresh"]), 401, "token_not_valid")
    assert_error(http("POST", f"{server}/api/token/refresh/", {"refresh": pair["access"]}), 401, "token_not_valid")


def test_disabled_user_and_sign_out_everywhere_revoke_tokens_and_keys(app, server, user, api_key):
    pair = http("POST", f"{server}/api/token/", {"username": USERNAME, "password": PASSWORD}).json
    assert models(server, api_key).status == 200
    with app.app_context():
        sessions.revoke_all(db.session.get(User, user))
        db.session.commit()
    assert_error(models(server, pair["access"]), 401, "token_not_valid")
    assert_error(http("POST", f"{server}/api/token/refresh/", {"refresh": pair["refresh"]}), 401)
    pair = http("POST", f"{server}/api/token/", {"username": USERNAME, "password": PASSWORD}).json
    assert models(server, pair["access"]).status == 200

    with app.app_context():
        db.session.get(User, user).is_disabled = True
        db.session.commit()
    assert "disabled" in assert_error(models(server, pair["access"]), 401)["message"]
    assert_error(http("POST", f"{server}/api/token/refresh/", {"refresh": pair["refresh"]}), 401)
    assert_error(models(server, api_key), 401, "invalid_api_key")
    assert_error(http("POST", f"{server}/api/token/", {"username": USERNAME, "password": PASSWORD}), 401)


def test_api_keys_work_until_revoked_and_record_last_use(app, server, user, api_key):
    assert http("GET", f"{server}/v1/models", headers=bearer(api_key)).status == 200
    assert models(server, api_key).status == 200
    with app.app_context():
        record = db.session.query(ApiKey).one()
        assert record.last_used_at is not None and record.key_hash != api_key and api_key not in record.prefix * 2
        record.revoked_at = record.last_used_at
        db.session.commit()
    assert_error(http("GET", f"{server}/v1/models", headers=bearer(api_key)), 401, "invalid_api_key")
    assert_error(http("GET", f"{server}/v1/models", headers=bearer("sb-" + "x" * 43)), 401, "invalid_api_key")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}])
def test_no_credentials_is_401(server, headers):
    for path in ("/v1/models", "/api/supported-models/?provider=echo"):
        error = assert_error(http("GET", server + path, headers=headers), 401, "not_authenticated")
        assert "Bearer" in error["message"]


def test_a_session_cookie_alone_never_authorizes(client, auth):
    auth.signup()
    assert client.get("/chat/").status_code == 200  # signed in for the pages
    response = client.get("/v1/models")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "not_authenticated"
    response = client.post(
        "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 401


def test_the_api_needs_no_csrf_token_and_errors_are_never_html(server):
    # The app enforces CSRF on forms; the API is exempt (it takes no cookies).
    assert http("POST", f"{server}/api/signup/", {"username": "no_csrf", "password": "long enough"}).status == 201
    assert_error(http("GET", f"{server}/api/no-such-endpoint/"), 404)
    assert_error(http("GET", f"{server}/api/signup/"), 405)
    assert_error(http("DELETE", f"{server}/v1/chat/completions"), 405)


@pytest.mark.parametrize(
    "body, fields",
    [
        ({}, {"username", "password"}),
        ({"username": "ok_name", "password": "short"}, {"password"}),
        ({"username": "a b!", "password": "long enough"}, {"username"}),
        ({"username": "x", "password": ""}, {"username", "password"}),
    ],
)
def test_signup_rejects_bad_fields_with_a_message_each(server, body, fields):
    reply = http("POST", f"{server}/api/signup/", body)
    assert_error(reply, 400, "invalid_fields")
    assert set(reply.json) - {"error"} == fields
    assert all(isinstance(reply.json[name], list) and reply.json[name][0] for name in fields)


def test_a_limit_error_raised_under_the_api_is_a_429_with_retry_after(app):
    from webapp.api.errors import handle_error

    class LimitExceeded(Exception):  # the shape of webapp.limits.LimitExceeded
        status_code = 429
        retry_after = 42

    with app.test_request_context("/v1/chat/completions"):
        response = handle_error(LimitExceeded("You have reached your limit of 5 requests per minute."))
    assert response.status_code == 429 and response.headers["Retry-After"] == "42"
    assert response.get_json()["error"] == {
        "message": "You have reached your limit of 5 requests per minute.",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
    }


def test_repeated_wrong_passwords_are_throttled_with_429(app, server, user):
    app.config["LOGIN_MAX_FAILURES"] = 3
    for _ in range(3):
        assert http("POST", f"{server}/api/token/", {"username": USERNAME, "password": "nope nope"}).status == 401
    reply = http("POST", f"{server}/api/token/", {"username": USERNAME, "password": PASSWORD})
    assert_error(reply, 429, "login_throttled")
    assert int(reply.headers["Retry-After"]) > 0 and reply.json["error"]["type"] == "rate_limit_error"
