"""/v1 with the official openai SDK when a fallback answers: `model` names the model that answered and
X-Switchboard-Fallback every model asked, streaming or not."""

import openai
from sqlalchemy import select

from tests.support.fallback import set_chain
from webapp.extensions import db
from webapp.models import Generation


def sdk(server, api_key):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=api_key, max_retries=0, timeout=30)


def test_v1_names_the_fallback_that_answered(app, server, api_key, worker, openai_server):
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"])
    openai_server.fail_next("rate_limit", path="chat", retry_after=None)
    raw = sdk(server, api_key).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "How is the weather on Venus?"}]
    )
    completion = raw.parse()
    assert completion.model == "gemini-1.5-pro"
    assert "Venus" in completion.choices[0].message.content
    assert raw.headers["x-switchboard-fallback"] == "gpt-4o=rate_limited, gemini-1.5-pro=answered"
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        assert generation.model_id == "gemini-1.5-pro"


def test_v1_streaming_names_the_fallback_too(app, server, api_key, worker, openai_server):
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"])
    openai_server.fail_next("unavailable", path="chat")
    with sdk(server, api_key).chat.completions.with_streaming_response.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": "stream this please"}]
    ) as response:
        assert response.headers["x-switchboard-fallback"] == "gpt-4o=provider_down, gemini-1.5-pro=answered"
        chunks = list(response.parse())
    assert {c.model for c in chunks} == {"gemini-1.5-pro"}
    assert "stream this please" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_v1_without_a_fallback_sends_no_header(app, server, api_key, worker):
    raw = sdk(server, api_key).chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().model == "echo" and "x-switchboard-fallback" not in raw.headers
