"""Bad input to the JSON APIs is a 400 with a JSON error, never a 5xx, and nothing is queued for it."""

import pytest
from sqlalchemy import func, select

from tests.support.api import PASSWORD, USERNAME, bearer, http
from webapp.extensions import db
from webapp.models import Generation

LONE_SURROGATE = b'{"model": "echo", "messages": [{"role": "user", "content": "bad \\ud800 text"}]}'
SURROGATE_KEY = b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], "\\udfff": 1}'
DEEP = b'{"model": "echo", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
NESTED_100 = (
    b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], "metadata": '
    + b'{"a": ' * 100
    + b"1"
    + b"}" * 100
    + b"}"
)
CASES = {
    "lone surrogate": LONE_SURROGATE,
    "surrogate in a key": SURROGATE_KEY,
    "nesting beyond the recursion limit": DEEP,
    "nesting beyond 64 levels": NESTED_100,
    "NaN": b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
    "Infinity": b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": -Infinity}',
    "a number too large for a float": b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], '
    b'"temperature": 1e999}',
    "not UTF-8": b'{"model": "echo", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    "truncated": b'{"model": "echo", "messages": [',
}


def generations(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Generation.id)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_v1_chat_completions_refuses_bad_json(server, app, api_key, case):
    reply = http("POST", f"{server}/v1/chat/completions", raw=CASES[case], headers=bearer(api_key))
    assert reply.status == 400, reply.text[:300]
    error = reply.json["error"]
    assert error["code"] == "invalid_json" and error["type"] == "invalid_request_error"
    assert "Traceback" not in reply.text
    assert generations(app) == 0


@pytest.mark.parametrize("case", ["lone surrogate", "nesting beyond the recursion limit", "NaN"])
def test_service_api_refuses_bad_json(server, app, access_token, case):
    reply = http(
        "POST", f"{server}/api/chat/completions/?provider=openai", raw=CASES[case], headers=bearer(access_token)
    )
    assert reply.status == 400, reply.text[:300]
    assert reply.json["error"]["code"] == "invalid_json"


def test_account_endpoints_refuse_bad_json(server, user):
    body = ('{"username": "' + USERNAME + '", "password": "\\ud800' + PASSWORD + '"}').encode()
    reply = http("POST", f"{server}/api/token/", raw=body)
    assert reply.status == 400 and reply.json["error"]["code"] == "invalid_json"
    reply = http("POST", f"{server}/api/signup/", raw=DEEP)
    assert reply.status == 400 and reply.json["error"]["code"] == "invalid_json"


def test_messages_say_what_is_wrong(server, api_key):
    said = {
        case: http("POST", f"{server}/v1/chat/completions", raw=CASES[case], headers=bearer(api_key)).json["error"][
            "message"
        ]
        for case in ("lone surrogate", "nesting beyond 64 levels", "NaN")
    }
    assert "Unicode" in said["lone surrogate"]
    assert "nested more than 64 levels" in said["nesting beyond 64 levels"]
    assert "NaN" in said["NaN"]


def test_did_you_mean_only_for_close_names(server, api_key):
    def message(model):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        reply = http("POST", f"{server}/v1/chat/completions", body, headers=bearer(api_key))
        assert reply.status in (400, 404), reply.text
        return reply.json["error"]["message"]

    assert "did you mean" not in message("nope")
    assert "did you mean 'gpt-4o'" in message("gpt4o")
