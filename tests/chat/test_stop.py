"""Stop: a queued job leaves the queue; a running one stops in the worker, which closes the provider stream."""

import time

import pytest
from rq.job import Job, JobStatus
from sqlalchemy import select

from tests.support.chat import get_generation, latest_generation, post_form, start_chat
from tests.support.waiting import wait_for
from webapp.database import write
from webapp.extensions import db
from webapp.generations import record
from webapp.models import User
from webapp.queue import get_queue, get_redis

LONG_REPLY = " ".join(f"word{i}" for i in range(400))  # 400 pieces at 40/s: about ten seconds


def status(client, generation_id, cursor=0, wait=0):
    response = client.get(f"/chat/generations/{generation_id}/status", query_string={"cursor": cursor, "wait": wait})
    assert response.status_code == 200
    return response.get_json()


def test_stop_while_queued_removes_the_job(client, auth, app, run_jobs):
    auth.signup()
    conversation_id = start_chat(client, "never answered")
    generation = latest_generation(app)
    assert generation.status == "queued"
    response = post_form(client, f"/chat/generations/{generation.id}/stop")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"/chat/{conversation_id}")
    generation = get_generation(app, generation.id)
    assert generation.status == "cancelled" and generation.finished_at is not None
    with app.app_context():
        queue = get_queue()
        assert generation.job_id not in queue.job_ids and queue.count == 0
        assert Job.fetch(generation.job_id, connection=get_redis()).get_status() == JobStatus.CANCELED
    run_jobs()  # nothing left to run
    assert get_generation(app, generation.id).status == "cancelled"
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "Stopped." in page and 'http-equiv="refresh"' not in page
    payload = status(client, generation.id)
    assert payload["status"] == "cancelled" and payload["done"] is True


def test_an_api_calls_reply_stopped_from_a_page_form_goes_back_to_the_chats(client, auth, app):
    """An API call's reply is on no page: its stop answers with a redirect to the chats, never an error."""
    auth.signup()
    with app.app_context():
        user = db.session.scalar(select(User))
        generation = write(  # as /v1 records its call: no conversation
            lambda: (
                record(
                    user_id=user.id,
                    model_id="echo",
                    provider="echo",
                    source="api",
                    streams=False,
                    request_messages=[{"role": "user", "content": "hi"}],
                ).id
            )
        )
    response = post_form(client, f"/chat/generations/{generation}/stop")
    assert response.status_code == 302 and response.headers["Location"].endswith("/chat/")
    assert get_generation(app, generation).status == "cancelled"


def test_stop_is_idempotent_and_json_for_scripts(client, auth, app):
    auth.signup()
    start_chat(client, "stop me twice")
    generation = latest_generation(app)
    first = post_form(client, f"/chat/generations/{generation.id}/stop", headers={"Accept": "application/json"})
    second = post_form(client, f"/chat/generations/{generation.id}/stop", headers={"Accept": "application/json"})
    assert first.get_json() == {"id": generation.id, "status": "cancelled"}
    assert second.get_json() == {"id": generation.id, "status": "cancelled"}


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 3], ids=["forking-worker", "threaded-worker"])
def test_stop_mid_stream_closes_the_provider_stream_and_keeps_the_text(
    client, auth, app, fake_openai, start_worker, concurrency
):
    fake_openai.reply = LONG_REPLY
    start_worker(concurrency)
    auth.signup()
    conversation_id = start_chat(client, "talk for a long time", model="gpt-4o")
    generation = latest_generation(app)
    assert generation.model_id == "gpt-4o"
    # Follow it like the page does until a good part has streamed.
    cursor, seen = 0, ""
    deadline = time.monotonic() + 40
    while len(seen) < 60:
        assert time.monotonic() < deadline, "the reply did not start streaming"
        payload = status(client, generation.id, cursor, wait=2)
        seen += payload["text"]
        cursor = payload["cursor"]
        assert not payload["done"], payload
    started = time.monotonic()
    response = post_form(client, f"/chat/generations/{generation.id}/stop", page=f"/chat/{conversation_id}")
    assert response.status_code == 302
    assert time.monotonic() - started < 5, "the worker did not stop at its next chunk"  # of ten seconds' reply
    assert fake_openai.disconnected.wait(10), "the provider server never saw the connection closed"
    stopped = get_generation(app, generation.id)
    assert stopped.status == "cancelled" and stopped.error is None
    assert stopped.text.startswith(seen) and len(seen) <= len(stopped.text) < len(LONG_REPLY)
    assert LONG_REPLY.startswith(stopped.text)
    # The status endpoint finishes the reader's text exactly.
    payload = status(client, generation.id, cursor)
    assert payload["done"] and seen + payload["text"] == stopped.text
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "Stopped." in page and "word3 word4" in page
    # Nothing more arrives afterwards: the provider sent the rest to nobody.
    assert len(fake_openai.chat_requests) == 1


@pytest.mark.slow
def test_stop_a_stalled_stream_falls_back_to_rq_stop_job(client, auth, app, fake_openai, start_worker):
    """The provider sends three pieces and goes silent: no chunk comes to check the stop key, so
    the web sends RQ's stop-job command; the forking worker kills the job, and the web records
    the cancellation with the text from the live stream."""
    fake_openai.reply = LONG_REPLY
    fake_openai.fail_next("stall", after=3, seconds=60)
    start_worker(1)
    auth.signup()
    conversation_id = start_chat(client, "stall please", model="gpt-4o")
    generation = latest_generation(app)
    wait_for(
        lambda: status(client, generation.id)["text"] == "word0 word1 word2 ", timeout=40, what="three pieces streamed"
    )
    response = post_form(client, f"/chat/generations/{generation.id}/stop", page=f"/chat/{conversation_id}")
    assert response.status_code == 302
    stopped = get_generation(app, generation.id)
    assert stopped.status == "cancelled"
    assert stopped.text == "word0 word1 word2 "
    with app.app_context():
        assert get_queue().started_job_registry.get_job_ids() == [] or wait_for(
            lambda: get_queue().started_job_registry.get_job_ids() == [], timeout=10
        )
