"""The fake servers themselves: pacing for benchmarks and fault scripting."""

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.fakes import FakeOpenAIServer


def post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    return urllib.request.urlopen(request, timeout=10)


def test_pacing_ttft_and_tokens_per_second():
    with FakeOpenAIServer(ttft=0.2, tokens_per_second=20, reply="a b c d e") as server:
        start = time.monotonic()
        with post(
            server.base_url + "/chat/completions",
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        ) as answer:
            lines = [line for line in answer.read().decode().splitlines() if line.startswith("data: ")]
        elapsed = time.monotonic() - start
    assert lines[-1] == "data: [DONE]"
    assert 0.2 + 4 / 20 <= elapsed < 3
    assert "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in lines[:-2]) == "a b c d e"


def test_zero_delay_mode_and_recording():
    with FakeOpenAIServer() as server:
        start = time.monotonic()
        for _ in range(20):
            with post(
                server.base_url + "/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            ) as answer:
                answer.read()
        assert time.monotonic() - start < 5
        assert len(server.wait_for_requests(20)) == 20
        assert server.last_request.json["messages"][0]["content"] == "hi"


def test_fail_next_applies_in_order_and_to_matching_paths():
    with FakeOpenAIServer() as server:
        server.fail_next("unavailable", path="/chat/completions")
        server.fail_next("rate_limit", retry_after=4, path="/chat/completions")
        with urllib.request.urlopen(server.base_url + "/models", timeout=5) as listing:
            assert listing.status == 200  # not a chat path: the 503 stays queued
        with pytest.raises(urllib.error.HTTPError) as first:
            post(server.base_url + "/chat/completions", {"messages": []})
        first.value.close()
        assert first.value.code == 503
        with pytest.raises(urllib.error.HTTPError) as second:
            post(server.base_url + "/chat/completions", {"messages": []})
        second.value.close()
        assert second.value.code == 429 and second.value.headers["Retry-After"] == "4"
        with pytest.raises(ValueError):
            server.fail_next("explode")
