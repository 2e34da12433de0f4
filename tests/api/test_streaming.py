"""Server-Sent Events over a raw connection: the chunks as they come, and a hang-up cancelling the job."""

import http.client
import json
import socket
from urllib.parse import urlsplit

from sqlalchemy import select

from tests.support.waiting import wait_for
from webapp.extensions import db
from webapp.models import Generation
from webapp.queue import get_queue


def open_stream(server: str, key: str, body: dict) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    url = urlsplit(server)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request(
        "POST",
        "/v1/chat/completions",
        json.dumps(body),
        {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    connection.raw_socket = connection.sock  # getresponse() hands the socket over to the response
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
    return connection, response


def read_event(response) -> dict:
    while True:
        line = response.readline().decode()
        assert line, "the stream ended"
        if line.startswith("data: "):
            return json.loads(line[len("data: ") :])


def hang_up(connection, response):
    connection.raw_socket.shutdown(socket.SHUT_RDWR)
    connection.raw_socket.close()
    response.close()
    connection.close()


def generation(app) -> Generation:
    with app.app_context():
        return db.session.scalar(select(Generation))


def test_hanging_up_mid_stream_cancels_the_running_job_and_keeps_the_partial_text(app, server, api_key, worker):
    words = " ".join(f"word{i}" for i in range(300))  # 30 s of reply: far longer than the test
    connection, response = open_stream(
        server,
        api_key,
        {"model": "echo", "stream": True, "delay": 0.1, "messages": [{"role": "user", "content": words}]},
    )
    assert read_event(response)["choices"][0]["delta"]["role"] == "assistant"
    received = ""
    while "word3" not in received:
        received += read_event(response)["choices"][0]["delta"].get("content") or ""
    hang_up(connection, response)

    cancelled = wait_for(lambda: (g := generation(app)).status == "cancelled" and g.finished_at and g, timeout=25)
    assert cancelled.text.startswith(received)
    assert "word3" in cancelled.text and "word299" not in cancelled.text
    # The worker is free again: a new request is answered.
    connection, response = open_stream(
        server,
        api_key,
        {"model": "echo", "stream": True, "delay": 0, "messages": [{"role": "user", "content": "again"}]},
    )
    body = response.read().decode()
    assert "again" in body and body.rstrip().endswith("data: [DONE]")
    response.close()
    connection.close()


def test_hanging_up_while_queued_cancels_before_it_runs(app, server, api_key):
    # No worker: the answer's headers wait for the first text, so the client hangs up before any byte.
    url = urlsplit(server)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request(
        "POST",
        "/v1/chat/completions",
        json.dumps({"model": "echo", "stream": True, "messages": [{"role": "user", "content": "never run"}]}),
        {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    wait_for(lambda: generation(app) is not None, what="the generation recorded")
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()
    cancelled = wait_for(lambda: (g := generation(app)).status == "cancelled" and g)
    assert cancelled.text == "" and cancelled.started_at is None
    with app.app_context():  # its job is taken off the queue just after the record says cancelled
        wait_for(lambda: get_queue().count == 0, what="the job taken off the queue")


def test_a_failure_before_the_first_token_is_an_http_error_not_a_stream(app, server, api_key, worker, openai_server):
    app.config["RETRY_MAX_ATTEMPTS"] = 1
    openai_server.fail_next("unauthorized")
    url = urlsplit(server)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request(
        "POST",
        "/v1/chat/completions",
        json.dumps({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
        {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 502 and response.getheader("Content-Type") == "application/json"
    assert body["error"]["code"] == "authentication_failed" and body["error"]["message"]


def test_a_failure_after_the_first_token_ends_the_stream_with_an_error_event(
    app, server, api_key, worker, openai_server
):
    app.config["RETRY_MAX_ATTEMPTS"] = 1
    openai_server.queue_reply("one two three four five six seven eight")
    openai_server.fail_next("cut", after=3)
    connection, response = open_stream(
        server, api_key, {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    events = [line[len("data: ") :] for line in response.read().decode().splitlines() if line.startswith("data: ")]
    response.close()
    connection.close()
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text.startswith("one two")
    error = json.loads(events[-2])["error"]
    assert error["code"] == "content_cut_off" and error["message"]
