"""Server-sent events for a reply: text and every status change, exact resume, heartbeats, endings, ownership."""

from __future__ import annotations

import json
import threading

import pytest

from tests.support.accounts import AuthActions
from tests.support.chat import get_generation, latest_generation, post_form, start_chat
from tests.support.waiting import wait_for
from webapp import create_app, live
from webapp.extensions import db
from webapp.queue import get_redis

LONG_REPLY = " ".join(f"word{i}" for i in range(400))  # 400 pieces at 40/s: about ten seconds
HEARTBEAT_SECONDS = 0.3


@pytest.fixture
def app_config(app_config):
    return {**app_config, "SSE_HEARTBEAT_SECONDS": HEARTBEAT_SECONDS}


class EventStream:
    """An open event stream read through the app's test client, event by event, as they are sent."""

    def __init__(self, client, generation_id, **kwargs):
        self.response = client.get(f"/chat/generations/{generation_id}/events", buffered=False, **kwargs)
        self._chunks = iter(self.response.response)
        self._buffer = ""
        self.ended = False

    def next(self):
        """The next event as a dict (``event``, ``id``, ``data``), ``{"comment": ...}``, or None at the end."""
        while "\n\n" not in self._buffer:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self.ended = True
                return None
            self._buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        block, self._buffer = self._buffer.split("\n\n", 1)
        event = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                event["comment"] = line[1:].strip()
            else:
                name, _, value = line.partition(": ")
                event[name] = json.loads(value) if name == "data" else value
        return event

    def events(self):
        while (event := self.next()) is not None:
            if "event" in event:
                yield event

    def close(self):
        self.response.close()


def read_text_until(stream, enough, start=0):
    """Text events until at least ``enough`` characters; returns (text, last id)."""
    text, last_id = "", None
    for event in stream.events():
        assert event["event"] in ("status", "text"), event
        if event["event"] == "text":
            text += event["data"]["text"]
            last_id = event["id"]
            assert int(last_id) == start + len(text)
            if len(text) >= enough:
                return text, last_id
    raise AssertionError(f"the stream ended after {len(text)} characters")


def read_to_end(stream):
    """(text, status events, ending event) of the rest of a stream; checks that it then closes."""
    text, statuses = "", []
    for event in stream.events():
        if event["event"] == "text":
            text += event["data"]["text"]
        elif event["event"] == "status":
            statuses.append(event["data"])
        else:
            assert stream.next() is None and stream.ended, "the stream stays open after its ending"
            return text, statuses, event
    raise AssertionError("the stream ended without an ending event")


def test_headers_and_a_finished_reply(client, auth, app, run_jobs):
    auth.signup()
    start_chat(client, "hello events")  # the default model: echo
    run_jobs()
    generation = get_generation(app, latest_generation(app).id)
    assert generation.status == "succeeded"
    stream = EventStream(client, generation.id)
    assert stream.response.status_code == 200
    assert stream.response.mimetype == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-store"
    assert stream.response.headers["X-Accel-Buffering"] == "no"
    assert stream.next() == {"retry": "2000"}
    text, statuses, ending = read_to_end(stream)
    assert text == generation.text and statuses == []
    assert ending["event"] == "done" and ending["id"] == str(len(generation.text))
    assert ending["data"]["usage"] == {
        "input_tokens": generation.input_tokens,
        "output_tokens": generation.output_tokens,
    }
    assert f'data-generation-id="{generation.id}"' in ending["data"]["html"]
    assert 'class="content markdown"' in ending["data"]["html"]
    # From its end, only the ending is left.
    stream = EventStream(client, generation.id, headers={"Last-Event-ID": str(len(generation.text))})
    assert read_to_end(stream)[:2] == ("", [])


def test_bad_cursor_is_a_clear_400(client, auth, app):
    auth.signup()
    start_chat(client, "x")
    generation = latest_generation(app)
    for headers, query in (
        ({"Last-Event-ID": "abc"}, {}),
        ({}, {"cursor": "-3"}),
        ({}, {"cursor": "²"}),
        ({"Last-Event-ID": "9" * 5000}, {}),
    ):
        response = client.get(f"/chat/generations/{generation.id}/events", headers=headers, query_string=query)
        assert response.status_code == 400 and "cursor" in response.get_json()["error"]["message"]


def test_another_users_generation_is_404(client, auth, app):
    auth.signup("alice")
    start_chat(client, "alice's secret")
    generation = latest_generation(app)
    auth.logout()
    auth.signup("mallory")
    response = client.get(f"/chat/generations/{generation.id}/events")
    assert response.status_code == 404
    assert client.get("/chat/generations/999999/events").status_code == 404


def test_queued_with_position_then_running_then_text_exactly_once(client, auth, app):
    """Written by hand the way the worker writes (webapp.live): every piece arrives once, in order."""
    auth.signup()
    start_chat(client, "first")
    start_chat(client, "second")
    generation = latest_generation(app)
    stream = EventStream(client, generation.id)
    stream.next()  # retry
    assert next(stream.events()) == {"id": "0", "event": "status", "data": {"status": "queued", "position": 2}}
    with app.app_context():
        writer = live.LiveWriter(get_redis(), generation.id)
    writer.reset()  # what a worker does when it takes the job: marked running
    assert next(stream.events())["data"] == {"status": "running", "position": None}
    pieces = ["Hel", "lo, ", "wörld", "!\n\nline"]

    def write():
        for piece in pieces:
            # Each piece lands while the stream waits for it.
            wait_for(
                lambda: writer.connection.pubsub_numsub(live.notify_channel(generation.id))[0][1] >= 1,
                timeout=5,
                what="the stream is subscribed",
            )
            writer.append(piece)

    writer_thread = threading.Thread(target=write)
    writer_thread.start()
    text = ""
    while text != "".join(pieces):
        event = next(stream.events())
        assert event["event"] == "text"
        text += event["data"]["text"]
        assert event["id"] == str(len(text))
    writer_thread.join()
    stream.close()


@pytest.mark.slow
def test_resume_with_last_event_id_misses_and_repeats_nothing(client, auth, app, fake_openai, start_worker):
    fake_openai.reply = LONG_REPLY
    start_worker(3)
    auth.signup()
    start_chat(client, "talk for a while", model="gpt-4o")
    generation = latest_generation(app)
    first = EventStream(client, generation.id)
    seen, last_id = read_text_until(first, 40)
    first.close()  # the connection drops mid-reply
    # EventSource reconnects with the last id it saw; the ?cursor= of the first request is ignored.
    second = EventStream(client, generation.id, headers={"Last-Event-ID": last_id}, query_string={"cursor": 0})
    more, last_id = read_text_until(second, 40, start=int(last_id))
    second.close()
    third = EventStream(client, generation.id, query_string={"cursor": last_id})  # the fallback for scripts
    rest, _statuses, ending = read_to_end(third)
    final = get_generation(app, generation.id)
    assert ending["event"] == "done" and final.status == "succeeded"
    assert seen + more + rest == final.text == LONG_REPLY


@pytest.mark.slow
def test_heartbeats_keep_an_idle_stream_open(client, auth, app):
    auth.signup()
    start_chat(client, "nobody runs this")
    generation = latest_generation(app)
    stream = EventStream(client, generation.id)
    assert stream.next() == {"retry": "2000"}
    assert stream.next()["data"]["status"] == "queued"
    assert stream.next() == {"comment": "heartbeat"}
    assert stream.next() == {"comment": "heartbeat"}
    stream.close()


@pytest.mark.slow
def test_the_stream_closes_when_the_reply_fails(client, auth, app, fake_openai, start_worker):
    fake_openai.reply = LONG_REPLY
    fake_openai.fail_next("cut", after=5)
    start_worker(3)
    auth.signup()
    start_chat(client, "break half-way", model="gpt-4o")
    generation = latest_generation(app)
    text, statuses, ending = read_to_end(EventStream(client, generation.id))
    final = get_generation(app, generation.id)
    assert final.status == "failed" and ending["event"] == "failed"
    assert ending["data"]["error"] == final.error and ending["data"]["error_headline"]
    assert text == final.text and LONG_REPLY.startswith(text)
    assert "Retry" in ending["data"]["html"]


@pytest.mark.slow
def test_the_stream_closes_on_stop(client, auth, app, fake_openai, start_worker):
    fake_openai.reply = LONG_REPLY
    start_worker(3)
    auth.signup()
    conversation_id = start_chat(client, "stop me", model="gpt-4o")
    generation = latest_generation(app)
    stream = EventStream(client, generation.id)
    seen, _ = read_text_until(stream, 30)
    # Stop is pressed while this stream is open.
    assert (
        post_form(client, f"/chat/generations/{generation.id}/stop", page=f"/chat/{conversation_id}").status_code == 302
    )
    rest, _statuses, ending = read_to_end(stream)
    final = get_generation(app, generation.id)
    assert ending["event"] == "stopped" and final.status == "cancelled"
    assert seen + rest == final.text and len(final.text) < len(LONG_REPLY)


def test_a_queued_reply_stopped_ends_its_stream(client, auth, app):
    auth.signup()
    start_chat(client, "never runs")
    generation = latest_generation(app)
    stream = EventStream(client, generation.id)
    stream.next()
    assert next(stream.events())["data"]["status"] == "queued"
    assert post_form(client, f"/chat/generations/{generation.id}/stop").status_code == 302
    text, _statuses, ending = read_to_end(stream)
    assert text == "" and ending["event"] == "stopped" and "Stopped." in ending["data"]["html"]


def test_a_stream_that_cannot_go_on_says_so_and_what_to_do(client, auth, app, app_config, tmp_path):
    """Redis unreachable: the stream ends with a ``reconnect`` event (and its cursor), never silently."""
    auth.signup()
    start_chat(client, "hello")  # stays queued: no worker runs here
    generation = latest_generation(app)
    cut_off = create_app({**app_config, "REDIS_URL": f"unix://{tmp_path / 'gone.sock'}"})
    try:
        reader = cut_off.test_client()
        assert AuthActions(reader).login().status_code == 302
        stream = EventStream(reader, generation.id, headers={"Last-Event-ID": "0"})
        assert stream.next() == {"retry": "2000"}
        events = list(stream.events())
        stream.close()
    finally:
        with cut_off.app_context():
            db.session.remove()
            db.engine.dispose()
    assert [event["event"] for event in events] == ["reconnect"], events
    assert events[0]["id"] == "0"
    assert events[0]["data"]["action"] == "reconnect" and events[0]["data"]["cursor"] == 0
    assert "reconnecting" in events[0]["data"]["message"]
    assert stream.ended


def test_a_new_reply_never_shows_a_stream_left_under_its_id(client, auth, app):
    """The database was reset while Redis kept its data: generation ids start again at 1."""
    with app.app_context():
        for generation_id in range(1, 4):
            live.seed(get_redis(), generation_id, f"an old reply {generation_id}")
    auth.signup()
    start_chat(client, "hello")
    generation = latest_generation(app)
    assert generation.id < 4
    stream = EventStream(client, generation.id)
    stream.next()  # retry
    assert next(stream.events()) == {"id": "0", "event": "status", "data": {"status": "queued", "position": 1}}
    with app.app_context():
        assert live.read_all(get_redis(), generation.id) == ""
