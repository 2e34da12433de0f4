import subprocess
import time

import pytest
from sqlalchemy import select

from tests.support.chat import send
from tests.support.stack import worker_command, worker_env
from webapp import live
from webapp.extensions import db
from webapp.models import Conversation, Generation
from webapp.paths import PROJECT_ROOT
from webapp.queue import get_redis


def test_echo_streams_in_pieces_through_redis(client, auth, app, run_jobs):
    app.config["ECHO_DELAY"] = 0
    app.config["LIVE_FLUSH_MS"] = 0  # every chunk its own write (by default they are coalesced)
    auth.signup()
    send(client, "alpha beta gamma delta")
    run_jobs()
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        entries = get_redis().xrange(live.stream_key(generation.id))
        chunks = [fields[b"t"].decode() for _id, fields in entries if b"t" in fields]
        assert len(chunks) > 3
        assert "".join(chunks) == generation.text
        assert generation.status == "succeeded"
        assert generation.attempts == 1
        assert generation.started_at and generation.finished_at and generation.enqueued_at
        assert generation.output_tokens and generation.input_tokens


def test_a_model_removed_after_sending_fails_with_a_reason(client, auth, app, run_jobs):
    auth.signup()
    send(client, "hello")
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        generation.model_id = "no-such-model"
        db.session.commit()
    run_jobs()
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        assert generation.status == "failed"
        assert generation.error_code == "unknown_model"
        assert "no-such-model" in generation.error


def test_history_is_sent_with_follow_ups(client, auth, app, run_jobs):
    from workers.history import conversation_turns

    auth.signup()
    first = send(client, "first")
    conversation_id = int(first.headers["Location"].split("/chat/")[1].split("#")[0])
    run_jobs()
    send(client, "second", conversation_id=conversation_id)
    with app.app_context():
        conversation = db.session.get(Conversation, conversation_id)
        prompt, history, _files = conversation_turns(conversation_id, conversation.messages[-1].id)
        assert prompt == "second" and [m["role"] for m in history] == ["user", "assistant"]
        assert history[0]["content"] == "first" and "first" in history[1]["content"]


@pytest.mark.slow
def test_real_worker_process_streams_a_reply(client, auth, app, app_config, instance_path, tmp_path):
    """The real `python -m workers` process (forking RQ worker) answers; the page sees the text grow."""
    app.config["ECHO_DELAY"] = 0.05
    env = worker_env(
        app_config,
        instance_path,
        ECHO_DELAY="0.05",
    )
    log_path = tmp_path / "worker.log"  # a file: a pipe read only at the end could fill and block the worker
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(worker_command(), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        auth.signup()
        words = " ".join(f"word{i}" for i in range(12))
        send(client, words)
        with app.app_context():
            generation_id = db.session.scalar(select(Generation.id))
        cursor, deltas, payload = 0, [], {}
        deadline = time.monotonic() + 30
        while not payload.get("done"):
            assert time.monotonic() < deadline, "the reply did not finish in time"
            payload = client.get(
                f"/chat/generations/{generation_id}/status", query_string={"cursor": cursor, "wait": 2}
            ).get_json()
            if payload["text"]:
                deltas.append(payload["text"])
            cursor = payload["cursor"]
        assert payload["status"] == "succeeded"
        assert len(deltas) > 2, deltas  # it arrived in pieces
        text = "".join(deltas)
        assert words in text
        with app.app_context():
            assert db.session.get(Generation, generation_id).text == text
    finally:
        worker.terminate()
        worker.wait(timeout=15)
    assert "generation" in log_path.read_text(errors="replace")  # the worker logged the job
