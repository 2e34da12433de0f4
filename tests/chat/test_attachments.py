"""Attachments in the chat without JavaScript: the multipart form (CSRF and one-time token kept), files
stored once by SHA-256 and deleted with the last conversation using them, served only to their owner
(or an admin) with safe headers, types checked from the bytes, limits checked before reading."""

from __future__ import annotations

import io
import re
import socket
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from tests.support.files import pdf, png
from tests.support.forms import page_tokens, post_form
from tests.support.queries import counting_statements
from tests.support.threaded_server import threaded_server
from tests.support.waiting import wait_for
from webapp.extensions import db
from webapp.models import Attachment, Generation, StoredFile


def send(client, path, text, files, page=None, model=None):
    """POST the composer as a browser does: multipart, with the page's CSRF and one-time tokens."""
    csrf, token = page_tokens(client, page or "/chat/")
    data = {"content": text, "csrf_token": csrf, "submission_token": token.group(1)}
    if model:
        data["model"] = model
    data["attachments"] = [(io.BytesIO(content), name) for name, content in files]
    return client.post(path, data=data, content_type="multipart/form-data")


def new_chat(client, text, files, model=None):
    response = send(client, "/chat/", text, files, model=model)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].split("/chat/")[1].split("#")[0])


def counts(app):
    with app.app_context():
        return (
            db.session.scalar(select(func.count()).select_from(StoredFile)),
            db.session.scalar(select(func.count()).select_from(Attachment)),
        )


def links(app, conversation_id=None):
    with app.app_context():
        rows = db.session.scalars(select(Attachment).order_by(Attachment.id)).all()
        return [(a.id, a.filename, a.file.content_type, a.message_id) for a in rows]


def test_send_an_image_and_a_pdf_through_the_plain_form(client, auth, app, run_jobs):
    auth.signup("alice")
    picture, document = png(640, 480), pdf("one", "two", "three")
    conversation_id = new_chat(client, "What do you see?", [("photo.png", picture), ("notes.pdf", document)])
    run_jobs()
    with app.app_context():
        reply = db.session.scalar(select(Generation).where(Generation.conversation_id == conversation_id))
        assert reply.status == "succeeded", reply.error
        assert "(received 1 image, 640×480 PNG; 1 PDF, 3 pages)" in reply.text
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    (image_id, _, image_type, _), (pdf_id, _, pdf_type, _) = links(app)
    assert (image_type, pdf_type) == ("image/png", "application/pdf")
    assert f'src="/chat/attachments/{image_id}/photo.png"' in page
    assert "notes.pdf" in page and "3 pages" in page
    served = client.get(f"/chat/attachments/{image_id}/photo.png")
    assert served.status_code == 200 and served.data == picture
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Cache-Control"].startswith("private")
    assert served.headers["Content-Disposition"].startswith("inline")
    served = client.get(f"/chat/attachments/{pdf_id}/notes.pdf")
    assert served.data == document and served.headers["Content-Type"] == "application/pdf"
    assert served.headers["Content-Disposition"].startswith("attachment")
    exported = client.get(f"/chat/{conversation_id}/export.json").get_json()
    assert [a["filename"] for a in exported["messages"][0]["attachments"]] == ["photo.png", "notes.pdf"]
    assert "Attached: notes.pdf" in client.get(f"/chat/{conversation_id}/export.md").get_data(as_text=True)


def test_files_are_looked_up_only_for_messages_that_have_some(client, auth, app, run_jobs):
    auth.signup("alice")
    text_only = new_chat(client, "just words", [])
    with counting_statements(app) as statements:
        run_jobs()  # the reply's history
        page = client.get(f"/chat/{text_only}")
    assert page.status_code == 200
    assert not [s for s in statements if "FROM attachments" in s]
    with_files = new_chat(client, "a picture", [("a.png", png(10, 10))])
    run_jobs()
    with counting_statements(app) as statements:
        page = client.get(f"/chat/{with_files}").get_data(as_text=True)
    assert len([s for s in statements if "FROM attachments" in s]) == 1
    assert "a.png" in page


def test_another_user_gets_404_and_a_visitor_is_sent_to_sign_in(client, auth, app):
    auth.signup("alice")
    new_chat(client, "mine", [("a.png", png())])
    [(attachment_id, *_)] = links(app)
    auth.logout()
    assert urlsplit(client.get(f"/chat/attachments/{attachment_id}/a.png").headers["Location"]).path == "/auth/login"
    auth.signup("mallory")
    assert client.get(f"/chat/attachments/{attachment_id}/a.png").status_code == 404


@pytest.mark.parametrize(
    "content",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>',
        b"<html><body><script>alert(document.cookie)</script></body></html>",
    ],
)
def test_html_or_svg_renamed_png_is_refused_and_the_text_kept(client, auth, app, content):
    auth.signup("alice")
    response = send(client, "/chat/", "keep these words", [("cat.png", content)])
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "not one of the allowed types" in page and "keep these words" in page
    assert counts(app) == (0, 0)


def test_file_names_are_escaped(client, auth, app):
    auth.signup("alice")
    conversation_id = new_chat(client, "x", [('<img src=x onerror=alert(1)>".pdf', pdf("x"))])
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_same_file_twice_is_stored_once_and_goes_with_the_last_conversation(client, auth, app):
    auth.signup("alice")
    picture = png(20, 20)
    first = new_chat(client, "one", [("a.png", picture)])
    second = new_chat(client, "two", [("b.png", picture)])
    assert counts(app) == (1, 2)
    post_form(client, f"/chat/{first}/delete")
    assert counts(app) == (1, 1)
    post_form(client, f"/chat/{second}/delete")
    assert counts(app) == (0, 0)


def test_an_image_for_a_text_only_model_is_refused_before_queueing(client, auth, app):
    auth.signup("alice")
    response = send(client, "/chat/", "what is this?", [("a.png", png())], model="gpt-3.5-turbo")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "cannot read images" in page and "what is this?" in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Generation)) == 0
    assert counts(app) == (1, 0)  # not linked to anything: kept for the next try (another model)
    assert "kept from your last try" in page


def test_too_many_files_is_a_clear_error(client, auth, app):
    auth.signup("alice")
    files = [(f"{i}.png", png(8 + i, 8)) for i in range(6)]
    response = send(client, "/chat/", "six", files)
    assert response.status_code == 400 and "At most 5 files" in response.get_data(as_text=True)


def test_editing_keeps_the_files_unless_removed(client, auth, app, run_jobs):
    auth.signup("alice")
    conversation_id = new_chat(client, "first", [("a.png", png(10, 10)), ("b.pdf", pdf("b"))])
    run_jobs()
    [(a_id, *_), (b_id, _, _, message_id)] = links(app)
    edit = f"/chat/{conversation_id}/messages/{message_id}/edit"
    csrf, token = page_tokens(client, edit)
    response = client.post(
        edit,
        data={
            "content": "second",
            "csrf_token": csrf,
            "submission_token": token.group(1),
            "keep_attachment": [str(a_id)],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    edited = [row for row in links(app) if row[3] != message_id]
    assert [name for _, name, _, _ in edited] == ["a.png"]
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "a.png" in page and "b.pdf" not in page  # the edited version is shown, with the file it kept


@pytest.fixture
def live_server(app):
    with threaded_server(app) as server:
        yield "127.0.0.1", server.server_port


def test_a_50_mb_upload_is_refused_from_its_size_without_being_read(app, auth, client, live_server):
    """A raw socket announces 50 MB but sends a few bytes: the answer (413) comes at once, so nothing
    waited to read the rest."""
    auth.signup("alice")
    cookie = client.get_cookie("session")
    csrf, _ = page_tokens(client, "/chat/")
    host, port = live_server
    with socket.create_connection((host, port), timeout=10) as sock:
        head = (
            "POST /chat/ HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            f"Cookie: session={cookie.value}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\n"
            "\r\n"
        )
        sock.sendall(head.encode() + b"--x\r\n")
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert counts(app) == (0, 0)


@pytest.mark.slow
def test_a_worker_in_another_process_reads_the_file_from_the_database(client, auth, app, start_worker):
    auth.signup("alice")
    conversation_id = new_chat(client, "from afar", [("far.png", png(33, 22))])
    start_worker()

    def finished():
        with app.app_context():
            reply = db.session.scalar(select(Generation).where(Generation.conversation_id == conversation_id))
            return reply if reply.is_finished else None

    reply = wait_for(finished, timeout=60, what="the worker process's reply")
    assert reply.status == "succeeded", reply.error
    assert "(received 1 image, 33×22 PNG)" in reply.text


def test_a_refused_file_keeps_the_other_files_for_the_next_try(client, auth, app):
    auth.signup("alice")
    bad = b"<html><script>alert(1)</script></html>"
    response = send(client, "/chat/", "two files", [("good.png", png(7, 7)), ("bad.png", bad)])
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "two files" in page and "good.png" in page and "kept from your last try" in page
    [token] = re.findall(r'name="kept_file" value="([^"]+)"', page)
    csrf, submission = page_tokens(client, "/chat/")
    data = {"content": "again", "csrf_token": csrf, "submission_token": submission.group(1), "kept_file": [token]}
    response = client.post("/chat/", data=data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert [(name, kind) for _, name, kind, _ in links(app)] == [("good.png", "image/png")]
    auth.logout()
    auth.signup("mallory")  # another user's token names nothing for them
    csrf, submission = page_tokens(client, "/chat/")
    data = {"content": "steal", "csrf_token": csrf, "submission_token": submission.group(1), "kept_file": [token]}
    assert client.post("/chat/", data=data, content_type="multipart/form-data").status_code == 302
    assert len(links(app)) == 1


def test_a_model_that_cannot_read_pdfs_gets_their_text_and_the_page_says_so(client, auth, app, run_jobs, fake_openai):
    auth.signup("alice")
    conversation_id = new_chat(client, "Summarise", [("plan.pdf", pdf("Launch moves to March"))], model="gpt-3.5-turbo")
    run_jobs()
    sent = fake_openai.chat_requests[-1].json["messages"][-1]["content"]
    assert sent[1]["type"] == "text" and "[Extracted text of the PDF file 'plan.pdf']" in sent[1]["text"]
    assert "Launch moves to March" in sent[1]["text"]
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "Sent to gpt-3.5-turbo as its extracted text" in page
