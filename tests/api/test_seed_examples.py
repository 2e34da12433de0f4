"""Every curl example of the LLM service API's specification (its endpoints, fields and example values, which docs/api.md keeps), run with curl as written against the app on a real server."""

import pytest

from tests.support.api import PASSWORD, USERNAME, bearer, curl, http
from tests.support.sse import openai_chunks

WELCOME = "curl http://127.0.0.1:8000/"
SIGNUP = """curl -X POST http://localhost:8000/api/signup/ \\
  -H "Content-Type: application/json" \\
  -d '{"username": "charming_user", "password": "secure_pwd"}'"""
TOKEN = """curl -X POST http://localhost:8000/api/token/ \\
  -H "Content-Type: application/json" \\
  -d '{"username": "$USERNAME", "password": "$PASSWORD"}'"""
REFRESH = """curl -X POST http://localhost:8000/api/token/refresh/ \\
  -H "Content-Type: application/json" \\
  -d '{"refresh": "$REFRESH_TOKEN"}'"""
SUPPORTED_MODELS = """curl "http://localhost:8000/api/supported-models/?provider=gemini" \\
  -H "Authorization: Bearer $ACCESS_TOKEN\""""
COMPLETION = """curl -X POST "http://localhost:8000/api/chat/completions/?provider=openai" \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer $ACCESS_TOKEN" \\
  -d '{
        "model": "gpt-3.5-turbo",
        "messages": [
          {"role": "user", "content": "How is the weather on Venus?"}
        ],
        "stream": false
      }'"""


def test_welcome(server):
    reply = curl(WELCOME, server)
    assert reply.status == 200 and reply.json == {"message": "Welcome to the LLM API!"}


def test_signup_token_refresh_as_in_the_readme(server):
    reply = curl(SIGNUP, server)
    assert reply.status == 201 and reply.json == {"message": "User created successfully"}

    tokens = curl(TOKEN, server, USERNAME=USERNAME, PASSWORD=PASSWORD)
    assert tokens.status == 200 and set(tokens.json) == {"access", "refresh"}
    assert tokens.json["access"].startswith("eyJ") and tokens.json["refresh"].startswith("eyJ")

    refreshed = curl(REFRESH, server, REFRESH_TOKEN=tokens.json["refresh"])
    # Rotation: a new refresh token comes with the access token (the sample's "access" is still there).
    assert refreshed.status == 200 and set(refreshed.json) == {"access", "refresh"}
    models = http("GET", f"{server}/api/supported-models/?provider=echo", headers=bearer(refreshed.json["access"]))
    assert models.status == 200 and models.json == {"models": ["echo"]}


def test_signup_twice_is_a_400_naming_the_field(server):
    assert curl(SIGNUP, server).status == 201
    again = curl(SIGNUP, server)
    assert again.status == 400
    assert again.json["username"] == ["A user with that username already exists."]
    assert again.json["error"]["type"] == "invalid_request_error" and "username" in again.json["error"]["message"]


def test_supported_models_of_gemini(server, access_token, gemini_server):
    reply = curl(SUPPORTED_MODELS, server, ACCESS_TOKEN=access_token)
    assert reply.status == 200
    assert set(reply.json) == {"models"} and reply.json["models"]
    assert all("gemini" in model for model in reply.json["models"])
    assert gemini_server.requests, "the provider was asked"


@pytest.mark.parametrize("provider, expected", [("openai", "gpt-3.5-turbo"), ("echo", "echo")])
def test_supported_models_per_provider(server, access_token, provider, expected):
    command = SUPPORTED_MODELS.replace("provider=gemini", f"provider={provider}")
    reply = curl(command, server, ACCESS_TOKEN=access_token)
    assert reply.status == 200 and expected in reply.json["models"]


def test_supported_models_of_an_unknown_provider_names_the_valid_ones(server, access_token):
    reply = curl(SUPPORTED_MODELS.replace("provider=gemini", "provider=nope"), server, ACCESS_TOKEN=access_token)
    assert reply.status == 400
    message = reply.json["error"]["message"]
    assert "nope" in message and all(name in message for name in ("openai", "gemini", "inhouse"))


def test_supported_models_when_the_inhouse_server_is_down(server, access_token):
    reply = curl(SUPPORTED_MODELS.replace("provider=gemini", "provider=inhouse"), server, ACCESS_TOKEN=access_token)
    assert reply.status == 503
    assert "unavailable" in reply.json["error"]["message"] and "in-house" in reply.json["error"]["message"].lower()


def test_chat_completion_as_in_the_readme(server, access_token, worker, openai_server):
    reply = curl(COMPLETION, server, ACCESS_TOKEN=access_token)
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-3.5-turbo"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "Fake answer to: How is the weather on Venus?"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    sent = openai_server.chat_requests[-1].json
    assert sent["model"] == "gpt-3.5-turbo"
    assert sent["messages"][-1] == {"role": "user", "content": "How is the weather on Venus?"}


def test_chat_completion_streamed(server, access_token, worker):
    command = COMPLETION.replace('"stream": false', '"stream": true')
    reply = curl(command, server, ACCESS_TOKEN=access_token)
    assert reply.status == 200
    chunks = openai_chunks(reply.text)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == "Fake answer to: How is the weather on Venus?"
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) > 1  # it arrived in pieces
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
