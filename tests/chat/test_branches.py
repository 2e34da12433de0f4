"""Edits make branches: a new version of any message with its own replies, the original kept and browsable,
replies written from the branch's own turns, every branch exported, and the page in a fixed number of queries."""

import json
import re

from sqlalchemy import select

from tests.support.chat import latest_generation, post_form, send, start_chat
from tests.support.queries import counting_statements
from webapp import site_settings
from webapp.accounts import signed_in
from webapp.extensions import db
from webapp.models import Generation, Message


def edit(client, conversation_id, message_id, content, token="edit-token-0001"):
    path = f"/chat/{conversation_id}/messages/{message_id}/edit"
    return post_form(client, path, {"content": content, "submission_token": token}, page=path)


def messages(app):
    with app.app_context():
        rows = db.session.scalars(select(Message).order_by(Message.id)).all()
        return [(m.id, m.parent_id, m.selected, m.content, [g.text for g in m.generations]) for m in rows]


def shown(client, conversation_id):
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    return re.findall(r'<li class="message user"[^>]*>.*?<div class="content">(.*?)</div>', page, re.S), page


def test_editing_makes_a_branch_and_keeps_the_original(client, auth, app, run_jobs):
    auth.signup()
    conversation_id = start_chat(client, "helo wrld")
    run_jobs()
    send(client, "a follow-up", conversation_id=conversation_id)
    run_jobs()
    (first, _, _, _, first_replies), (second, *_rest) = messages(app)

    # Any message can be edited, not just the last; a resent form makes nothing more.
    assert client.get(f"/chat/{conversation_id}/messages/{first}/edit").status_code == 200
    response = edit(client, conversation_id, first, "hello world")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"#m{second + 1}")
    edit(client, conversation_id, first, "hello world")
    run_jobs()
    rows = messages(app)
    assert len(rows) == 3
    edited = rows[2]
    assert edited[1] is None and edited[2] is True and edited[3] == "hello world" and "hello world" in edited[4][0]
    # The original and its replies (and what followed it) are untouched.
    assert rows[0] == (first, None, False, "helo wrld", first_replies)
    assert rows[1][:4] == (second, first, True, "a follow-up")
    with app.app_context():
        assert db.session.get(Message, first).conversation.title == "hello world"

    # The page shows the new branch, with the versions of the message browsable at it.
    contents, page = shown(client, conversation_id)
    assert contents == ["hello world"]
    assert '<span class="version-count">2/2</span>' in page and "Previous version of this message</span>" in page
    response = post_form(client, f"/chat/{conversation_id}/messages/{first}/select", page=f"/chat/{conversation_id}")
    assert response.status_code == 303
    contents, page = shown(client, conversation_id)
    assert contents == ["helo wrld", "a follow-up"] and '<span class="version-count">1/2</span>' in page

    # Editing a message deeper in a branch: its reply is written from that branch's turns only.
    edit(client, conversation_id, second, "a better follow-up", token="edit-token-0002")
    reply = latest_generation(app)
    assert reply.request_messages == [
        {"role": "user", "content": "helo wrld"},
        {"role": "assistant", "content": first_replies[0]},
        {"role": "user", "content": "a better follow-up"},
    ]
    run_jobs()
    contents, _page = shown(client, conversation_id)
    assert contents == ["helo wrld", "a better follow-up"]
    # A new message continues the visible branch.
    send(client, "and then?", conversation_id=conversation_id)
    with app.app_context():
        newest = db.session.scalar(select(Message).order_by(Message.id.desc()))
        assert newest.parent_id == rows[2][0] + 1  # the better follow-up
        turns = db.session.get(Generation, latest_generation(app).id).request_messages
        assert turns[-1]["content"] == "and then?"


def test_reply_versions_stay_browsable_within_a_branch(client, auth, app, run_jobs):
    auth.signup()
    conversation_id = start_chat(client, "one")
    run_jobs()
    first = messages(app)[0][0]
    edit(client, conversation_id, first, "two")
    run_jobs()
    edited = messages(app)[1][0]
    reply = latest_generation(app)
    post_form(client, f"/chat/{conversation_id}/messages/{edited}/regenerate", {"of": reply.id})
    run_jobs()
    _contents, page = shown(client, conversation_id)
    assert 'aria-label="Versions of this reply"' in page and "2/2" in page and "Versions of this message" in page


def test_export_has_every_branch_with_the_visible_path_marked(client, auth, app, run_jobs):
    auth.signup()
    conversation_id = start_chat(client, "the original question")
    run_jobs()
    first = messages(app)[0][0]
    edit(client, conversation_id, first, "the edited question")
    run_jobs()
    data = json.loads(client.get(f"/chat/{conversation_id}/export.json").get_data(as_text=True))
    assert data["visible_path"] == [first + 1]
    by_content = {m["content"]: m for m in data["messages"]}
    assert by_content["the original question"]["on_visible_path"] is False
    assert by_content["the edited question"]["on_visible_path"] is True
    assert by_content["the edited question"]["parent_id"] is None
    assert by_content["the original question"]["replies"][0]["text"]
    markdown = client.get(f"/chat/{conversation_id}/export.md").get_data(as_text=True)
    visible, _, others = markdown.partition("---")
    assert "▶" in visible and "the edited question" in visible
    assert "the original question" in others and "not on the visible path" in others


def count_queries(app, client, path):
    with app.app_context():
        site_settings.invalidate()  # every measurement reloads the cached settings: counts compare
        signed_in.invalidate()  # and the signed-in user
    with counting_statements(app) as statements:
        assert client.get(path).status_code == 200
    return len(statements)


def test_the_chat_page_takes_the_same_queries_however_many_branches(client, auth, app, run_jobs):
    auth.signup()
    conversation_id = start_chat(client, "start")
    run_jobs()
    small = count_queries(app, client, f"/chat/{conversation_id}")
    for number in range(4):
        send(client, f"more {number}", conversation_id=conversation_id)
        run_jobs()
        last = messages(app)[-1][0]
        edit(client, conversation_id, last, f"edited {number}", token=f"edit-token-1{number:03}")
        run_jobs()
    assert count_queries(app, client, f"/chat/{conversation_id}") == small


def test_the_reply_fragment_is_the_last_only_when_no_message_follows_and_reads_no_conversation(
    client, auth, app, run_jobs
):
    auth.signup()
    conversation_id = start_chat(client, "first")
    run_jobs()
    first = latest_generation(app)
    send(client, "second", conversation_id=conversation_id)
    run_jobs()
    second = latest_generation(app)

    def fragment(generation):
        with counting_statements(app) as statements:
            html = client.get(f"/chat/generations/{generation.id}/fragment").get_data(as_text=True)
        assert not [s for s in statements if re.search(r"\bFROM conversations\b", s)], statements
        return html

    regenerate = f"/chat/{conversation_id}/messages/{{}}/regenerate"
    earlier, last = fragment(first), fragment(second)
    assert 'id="latest"' not in earlier and regenerate.format(first.message_id) not in earlier
    assert 'id="latest"' in last and regenerate.format(second.message_id) in last
    # A new version of the first message starts a branch of its own: its reply is that branch's last.
    assert edit(client, conversation_id, first.message_id, "first, edited").status_code == 302
    run_jobs()
    edited = latest_generation(app)
    assert edited.message_id not in (first.message_id, second.message_id)
    assert 'id="latest"' in fragment(edited)
