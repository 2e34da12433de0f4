"""Shared links: another user opens one, an anonymous visitor is sent to sign in, a revoked link is 404;
a snapshot until refreshed; Continue copies the messages and not the owner's settings unless shared."""

import re

import pytest
from sqlalchemy import select

from tests.support.queries import counting_statements
from webapp import sharing
from webapp.accounts import create_user
from webapp.extensions import db
from webapp.models import AuditEvent, Conversation, Generation, Message, SharedLink, User

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SUBMISSION_RE = re.compile(r'name="submission_token"[^>]*value="([^"]+)"')
PASSWORD = "correct horse"


def csrf(client, path):
    return CSRF_RE.search(client.get(path).get_data(as_text=True)).group(1)


def signed_in(app, username):
    client = app.test_client()
    response = client.post(
        "/auth/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf(client, "/auth/login")}
    )
    assert response.status_code == 302
    return client


def send(client, text, conversation_id=None):
    page_path = f"/chat/{conversation_id}" if conversation_id else "/chat/"
    page = client.get(page_path).get_data(as_text=True)
    data = {
        "content": text,
        "csrf_token": CSRF_RE.search(page).group(1),
        "submission_token": SUBMISSION_RE.search(page).group(1),
    }
    response = client.post(f"/chat/{conversation_id}/messages" if conversation_id else "/chat/", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(re.search(r"/chat/(\d+)", response.headers["Location"]).group(1))


@pytest.fixture
def people(app):
    with app.app_context():
        alice = create_user("alice", PASSWORD)
        alice.default_system_prompt = "Alice's secret instructions"
        alice.default_options = {"temperature": 0.3}
        create_user("bob", PASSWORD)
        db.session.commit()
    return signed_in(app, "alice"), signed_in(app, "bob")


@pytest.fixture
def chat(app, people, run_jobs):
    """alice's conversation: two turns answered by the echo model, the first with Markdown."""
    alice, _bob = people
    conversation_id = send(alice, "**bold** and <b>html</b>")
    run_jobs()
    send(alice, "second question", conversation_id)
    run_jobs()
    return conversation_id


def share(client, conversation_id, include_system_prompt=False):
    data = {"csrf_token": csrf(client, f"/chat/{conversation_id}")}
    if include_system_prompt:
        data["include_system_prompt"] = "y"
    response = client.post(f"/share/conversations/{conversation_id}", data=data)
    assert response.status_code == 302
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    return re.search(r'id="share-url"[^>]*value="http://localhost(/s/[^"]+)"', page).group(1)


def link_action(client, link_path, action):
    with client.application.app_context():
        token = link_path.rsplit("/", 1)[1]
        link_id = db.session.scalar(select(SharedLink.id).where(SharedLink.token == token))
    return client.post(f"/share/{link_id}/{action}", data={"csrf_token": csrf(client, "/share/")})


def test_another_user_opens_the_link_read_only(app, people, chat):
    alice, bob = people
    path = share(alice, chat)
    response = bob.get(path)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "noindex" in response.headers["X-Robots-Tag"] and '<meta name="robots" content="noindex' in page
    assert "Shared by <strong>alice</strong>" in page
    # Markdown rendered as the chat renders it; the user's own text shown as text.
    assert "<strong>bold</strong>" in page and "&lt;b&gt;html&lt;/b&gt;" in page
    assert "second question" in page
    assert 'name="content"' not in page and 'id="composer"' not in page  # no composer
    assert "Alice&#39;s secret instructions" not in page  # the system prompt was not ticked
    assert "Continue in my chats" in page
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.action == "share.create"))


def test_an_anonymous_visitor_is_sent_to_sign_in_unless_public_links_are_allowed(app, people, chat):
    alice, _bob = people
    path = share(alice, chat)
    anonymous = app.test_client()
    response = anonymous.get(path)
    assert response.status_code == 302 and "/auth/login?next=" in response.headers["Location"]
    with app.app_context():
        sharing.set_public_links(None, True)
        db.session.commit()
    response = anonymous.get(path)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "Sign in</a> to continue" in response.get_data(as_text=True)


def test_the_link_is_a_snapshot_until_the_owner_refreshes_it(app, people, chat, run_jobs):
    alice, bob = people
    path = share(alice, chat)
    send(alice, "a later message", chat)
    run_jobs()
    assert "a later message" not in bob.get(path).get_data(as_text=True)
    assert link_action(alice, path, "refresh").status_code == 302
    assert "a later message" in bob.get(path).get_data(as_text=True)


def test_a_revoked_link_is_404_and_leaves_the_owners_lists(app, people, chat):
    alice, bob = people
    path = share(alice, chat)
    assert 'class="shared-marker"' in alice.get("/chat/").get_data(as_text=True)
    assert path in alice.get("/share/").get_data(as_text=True)
    assert link_action(bob, path, "revoke").status_code == 404  # not his
    assert link_action(alice, path, "revoke").status_code == 302
    assert bob.get(path).status_code == 404
    assert alice.get(path).status_code == 404
    assert app.test_client().get(path).status_code == 302  # anonymous: sent to sign in, told nothing
    assert path not in alice.get("/share/").get_data(as_text=True)
    assert 'class="shared-marker"' not in alice.get("/chat/").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.action == "share.revoke"))


def test_deleting_the_conversation_ends_its_link(app, people, chat):
    alice, bob = people
    path = share(alice, chat)
    response = alice.post(f"/chat/{chat}/delete", data={"csrf_token": csrf(alice, f"/chat/{chat}")})
    assert response.status_code == 302
    assert bob.get(path).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(SharedLink.id)) is None


def test_continue_copies_the_messages_and_not_the_owners_settings(app, people, chat):
    alice, bob = people
    path = share(alice, chat)
    token = csrf(bob, path)
    response = bob.post(path + "/continue", data={"csrf_token": token})
    assert response.status_code == 302
    copy_id = int(re.search(r"/chat/(\d+)", response.headers["Location"]).group(1))
    with app.app_context():
        copy = db.session.get(Conversation, copy_id)
        bob_user = db.session.scalar(select(User).where(User.username == "bob"))
        assert copy.user_id == bob_user.id and copy.id != chat
        assert copy.system_prompt is None and copy.options == {}
        messages = db.session.scalars(select(Message).where(Message.conversation_id == copy_id).order_by(Message.id))
        turns = [(m.content, m.reply.text, m.reply.status) for m in messages]
        originals = db.session.scalars(select(Message).where(Message.conversation_id == chat).order_by(Message.id))
        assert turns == [(m.content, m.reply.text, "succeeded") for m in originals]
        assert [t[0] for t in turns] == ["**bold** and <b>html</b>", "second question"]
        assert turns[1][1].endswith("second question")
        assert all(
            g.user_id == bob_user.id
            for g in db.session.scalars(select(Generation).where(Generation.conversation_id == copy_id))
        )
        assert db.session.get(Conversation, chat).title == copy.title
    assert "second question" in bob.get(f"/chat/{copy_id}").get_data(as_text=True)


def test_the_system_prompt_is_shared_and_copied_only_when_ticked(app, people, chat):
    alice, bob = people
    path = share(alice, chat, include_system_prompt=True)
    assert "Alice&#39;s secret instructions" in bob.get(path).get_data(as_text=True)
    response = bob.post(path + "/continue", data={"csrf_token": csrf(bob, path)})
    copy_id = int(re.search(r"/chat/(\d+)", response.headers["Location"]).group(1))
    with app.app_context():
        copy = db.session.get(Conversation, copy_id)
        assert copy.system_prompt == "Alice's secret instructions"
        assert copy.options == {}  # the owner's options stay hers


def test_the_page_of_a_conversation_with_no_link_reads_no_link_row(app, people, chat):
    """The list of the owner's shared conversations (read once for the sidebar) says there is none to show."""
    alice, _bob = people
    with counting_statements(app) as statements:
        page = alice.get(f"/chat/{chat}").get_data(as_text=True)
    assert 'id="share-url"' not in page
    assert len([s for s in statements if re.search(r"\bFROM shared_links\b", s)]) == 1, statements
    share(alice, chat)  # ... and once it has one, the page shows it (share() reads it from the page)
