import concurrent.futures
import threading

import pytest
from sqlalchemy import func, select

from tests.support.chat import send
from tests.support.forms import SUBMISSION_RE, csrf_token
from webapp.extensions import db
from webapp.models import Conversation, Generation, Message
from webapp.queue import get_redis
from workers import recovery


def counts(app):
    with app.app_context():
        return (
            db.session.scalar(select(func.count(Message.id))),
            db.session.scalar(select(func.count(Generation.id))),
        )


def test_message_is_saved_queued_and_answered_by_echo(client, auth, app, run_jobs):
    auth.signup()
    response = send(client, "hello there, model")
    assert response.status_code == 302
    conversation_url = response.headers["Location"].split("#")[0]
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        assert generation.status == "queued"
        assert generation.job_id == f"generation-{generation.id}"
        assert generation.model_id == "echo" and generation.provider == "echo"
        assert generation.message.content == "hello there, model"
        generation_id = generation.id
    page = client.get(conversation_url).get_data(as_text=True)
    assert "Waiting in the queue" in page
    assert '<meta http-equiv="refresh"' in page  # inside <noscript>: JS-off browsers refresh

    run_jobs()

    status = client.get(f"/chat/generations/{generation_id}/status").get_json()
    assert status["status"] == "succeeded" and status["done"] is True
    assert "hello there, model" in status["text"]
    assert "echo" in status["text"].lower()
    assert status["cursor"] == len(status["text"])
    page = client.get(conversation_url).get_data(as_text=True)
    assert "hello there, model" in page
    assert 'http-equiv="refresh"' not in page


def test_status_cursor_returns_only_new_text(client, auth, app, run_jobs):
    auth.signup()
    send(client, "one two three four")
    run_jobs()
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        full = generation.text
    url = f"/chat/generations/{generation.id}/status"
    assert client.get(url, query_string={"cursor": 5}).get_json()["text"] == full[5:]
    assert client.get(url, query_string={"cursor": len(full)}).get_json()["text"] == ""


def test_empty_message_is_refused_and_saves_nothing(client, auth, app):
    auth.signup()
    response = send(client, "   ")
    assert response.status_code == 400  # a form error: the page again, with the message
    assert "Write a message first." in response.get_data(as_text=True)
    assert counts(app) == (0, 0)


def test_missing_csrf_token_saves_nothing(client, auth, app):
    auth.signup()
    response = client.post("/chat/", data={"content": "hi", "submission_token": "t" * 20})
    assert response.status_code == 400
    assert "without a valid CSRF token" in response.get_data(as_text=True)
    assert counts(app) == (0, 0)


def test_double_submit_creates_one_message_and_one_job(client, auth, app, run_jobs):
    auth.signup()
    first = send(client, "only once", submission_token="same-token-123456")
    conversation_id = int(first.headers["Location"].split("/chat/")[1].split("#")[0])
    second = send(client, "only once", conversation_id=conversation_id, submission_token="same-token-123456")
    assert second.status_code == 302
    assert counts(app) == (1, 1)
    with app.app_context():
        from webapp.queue import get_queue

        assert get_queue().count == 1


def test_follow_up_goes_to_the_same_conversation(client, auth, app, run_jobs):
    auth.signup()
    first = send(client, "first message")
    conversation_id = int(first.headers["Location"].split("/chat/")[1].split("#")[0])
    run_jobs()
    send(client, "second message", conversation_id=conversation_id)
    run_jobs()
    with app.app_context():
        conversation = db.session.get(Conversation, conversation_id)
        assert [m.content for m in conversation.messages] == ["first message", "second message"]
        assert all(m.reply.status == "succeeded" for m in conversation.messages)
        assert conversation.title == "first message"


def test_other_users_get_404(client, auth, app, run_jobs):
    auth.signup("alice")
    response = send(client, "private words")
    conversation_path = response.headers["Location"].split("#")[0]
    run_jobs()
    with app.app_context():
        generation_id = db.session.scalar(select(Generation.id))
    auth.logout()
    auth.signup("mallory")
    assert client.get(conversation_path).status_code == 404
    status = client.get(f"/chat/generations/{generation_id}/status")
    assert status.status_code == 404
    assert status.is_json and "private words" not in status.get_data(as_text=True)
    assert "private words" not in client.get("/chat/").get_data(as_text=True)


def test_status_endpoint_needs_login_and_answers_json(client):
    response = client.get("/chat/generations/1/status")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == 401


def test_queue_down_keeps_the_message_and_answers_it_when_the_queue_is_back(client, auth, app, tmp_path, run_jobs):
    auth.signup()
    redis_url = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = f"unix://{tmp_path / 'nothing-listens-here.sock'}"
    app.extensions.pop("switchboard_redis", None)
    response = send(client, "do not lose me")
    assert response.status_code == 302
    page = client.get(response.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert "queue is unavailable" in page and "will be answered as soon as the queue is back" in page
    assert "do not lose me" in page
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        assert generation.status == "queued", "held for the queue, not failed"
        assert generation.message.content == "do not lose me"
        # The queue comes back; the workers' next sweep (once the web's grace has passed) queues it.
        app.config["REDIS_URL"] = redis_url
        app.extensions.pop("switchboard_redis", None)
        generation.enqueued_at -= recovery.queued_grace()
        db.session.commit()
        assert recovery.sweep(get_redis()) == {generation.id: "requeued"}
    run_jobs()
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        assert generation.status == "succeeded" and "do not lose me" in generation.text
        assert generation.requeues == 1


def test_welcome_json_for_api_clients_and_redirect_for_browsers(client):
    response = client.get("/", headers={"Accept": "*/*"})
    assert response.get_json() == {"message": "Welcome to the LLM API!"}
    response = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code == 302


def test_security_headers(client):
    response = client.get("/auth/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_page_is_an_html_404(client):
    response = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "<html" in response.get_data(as_text=True)


@pytest.mark.parametrize("new_chat", [True, False], ids=["new chat", "existing chat"])
def test_the_same_form_posted_twice_at_once_saves_one_message_and_redirects_both(client, auth, app, new_chat):
    auth.signup()
    conversation_id = None
    if not new_chat:
        conversation_id = int(send(client, "first").headers["Location"].split("#")[0].rsplit("/", 1)[1])
    twin = app.test_client()
    twin.set_cookie("session", client.get_cookie("session").value)
    for attempt in range(10):
        path = f"/chat/{conversation_id}" if conversation_id else "/chat/"
        page = client.get(path).get_data(as_text=True)
        data = {
            "content": f"twice {attempt}",
            "csrf_token": csrf_token(client, path),
            "submission_token": SUBMISSION_RE.search(page).group(1),
        }
        post_path = f"/chat/{conversation_id}/messages" if conversation_id else "/chat/"
        barrier = threading.Barrier(2)

        def post(c):
            barrier.wait()
            return c.post(post_path, data=data)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            responses = list(pool.map(post, [client, twin]))
        assert [r.status_code for r in responses] == [302, 302], [r.get_data(as_text=True)[:300] for r in responses]
        locations = {r.headers["Location"] for r in responses}
        assert len(locations) == 1, locations  # both land on the one conversation
        with app.app_context():
            saved = db.session.scalars(select(Message).where(Message.content == f"twice {attempt}")).all()
            assert len(saved) == 1 and len(saved[0].generations) == 1
