"""The status endpoint: cursor, wait (long polling), queue position, usage; reload mid-stream."""

import time

import pytest

from tests.support.chat import get_generation, latest_generation, start_chat
from tests.support.waiting import wait_for
from webapp import live
from webapp.queue import get_redis


def status(client, generation_id, **params):
    response = client.get(f"/chat/generations/{generation_id}/status", query_string=params)
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def test_queue_position_while_queued(client, auth, app):
    auth.signup()
    start_chat(client, "first in line")
    first = latest_generation(app)
    start_chat(client, "second in line")
    second = latest_generation(app)
    assert status(client, first.id)["position"] == 1
    assert status(client, second.id)["position"] == 2
    page = client.get(f"/chat/{second.conversation_id}").get_data(as_text=True)
    assert "Waiting in the queue (position 2)" in page


def test_wait_holds_until_the_deadline_when_nothing_arrives(client, auth, app):
    auth.signup()
    start_chat(client, "nobody runs this")
    generation = latest_generation(app)
    started = time.monotonic()
    payload = status(client, generation.id, cursor=0, wait=0.6)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3, elapsed
    assert payload["text"] == "" and payload["cursor"] == 0 and payload["status"] == "queued"
    assert payload["done"] is False


def test_wait_returns_as_soon_as_a_chunk_lands_and_cursor_gives_only_new_text(client, auth, app):
    """Chunks written the way the worker writes them (webapp.live) reach a held request at once."""
    auth.signup()
    start_chat(client, "streamed by hand")
    generation = latest_generation(app)
    with app.app_context():
        writer = live.LiveWriter(get_redis(), generation.id)
        writer.append("Hello, ")
    assert status(client, generation.id, cursor=0)["text"] == "Hello, "
    import threading

    def later():
        # The chunk lands while the request below is held (waiting on the process's pub/sub reader).
        channel = live.notify_channel(generation.id)
        wait_for(
            lambda: dict(writer.connection.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1,
            timeout=8,
            what="the status request is waiting",
        )
        writer.append("wörld!")

    thread = threading.Thread(target=later)
    started = time.monotonic()
    thread.start()
    payload = status(client, generation.id, cursor=7, wait=8)
    thread.join()
    assert time.monotonic() - started < 4  # woke on the chunk, not on the 8 s deadline
    assert payload["text"] == "wörld!" and payload["cursor"] == 13
    assert status(client, generation.id, cursor=9)["text"] == "rld!"
    assert status(client, generation.id, cursor=13, wait=0)["text"] == ""


def test_longest_wait_answers_at_once_when_text_is_there(client, auth, app):
    auth.signup()
    start_chat(client, "x")
    generation = latest_generation(app)
    started = time.monotonic()
    with app.app_context():
        live.LiveWriter(get_redis(), generation.id).append("now")
    status(client, generation.id, cursor=0, wait=10)  # the longest wait; text is there: answers at once
    assert time.monotonic() - started < 5


def test_usage_after_the_reply(client, auth, app, run_jobs):
    auth.signup()
    start_chat(client, "count my tokens please")
    run_jobs()
    generation = latest_generation(app)
    payload = status(client, generation.id)
    assert payload["done"] and payload["position"] is None
    assert payload["usage"]["input_tokens"] > 0 and payload["usage"]["output_tokens"] > 0


@pytest.mark.slow
def test_reload_mid_stream_picks_the_reply_up_where_it_stands(client, auth, app, fake_openai, start_worker):
    fake_openai.reply = " ".join(f"tok{i}" for i in range(120))  # about three seconds
    start_worker(2)
    auth.signup()
    conversation_id = start_chat(client, "stream a while", model="gpt-4o")
    generation = latest_generation(app)
    wait_for(lambda: len(status(client, generation.id)["text"]) > 40, timeout=40, what="some text streamed")
    # A reload (or another device) renders what has streamed so far, with the cursor after it.
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert 'data-status="running"' in page and '<meta http-equiv="refresh" content="2; url=' in page
    cursor = int(page.split('data-cursor="')[1].split('"')[0])
    assert cursor > 40 and "tok0 tok1 tok2" in page
    text = fake_openai.reply[:cursor]
    payload = {"done": False, "cursor": cursor}
    while not payload["done"]:
        payload = status(client, generation.id, cursor=payload["cursor"], wait=3)
        text += payload["text"]
    assert text == fake_openai.reply == get_generation(app, generation.id).text
    finished = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert 'data-status="succeeded"' in finished and 'http-equiv="refresh"' not in finished


@pytest.mark.parametrize(
    "params",
    [
        {"wait": "nan"},
        {"wait": "NaN"},
        {"wait": "inf"},
        {"wait": "-1"},
        {"wait": "1e9"},
        {"wait": "11"},
        {"wait": "soon"},
        {"cursor": "-5"},
        {"cursor": "99999999999999999999"},
        {"cursor": "1.5"},
        {"cursor": "x"},
    ],
)
def test_bad_cursor_or_wait_is_a_json_400(client, auth, app, params):
    auth.signup()
    start_chat(client, "a reply nobody runs")
    generation = latest_generation(app)
    response = client.get(f"/chat/generations/{generation.id}/status", query_string=params)
    assert response.status_code == 400 and response.is_json, response.get_data(as_text=True)[:300]
    name = next(iter(params))
    assert f"'{name}' must be" in response.get_json()["error"]["message"]


def test_in_range_values_are_accepted(client, auth, app):
    auth.signup()
    start_chat(client, "a reply nobody runs")
    generation = latest_generation(app)
    assert status(client, generation.id, cursor=0, wait=0)["status"] == "queued"
    assert status(client, generation.id, cursor="", wait="")["cursor"] == 0
    assert status(client, generation.id, cursor=3, wait="0.0")["cursor"] == 3
