"""The composer posted by the page's script (static/composer.js, header ``X-Composer: fetch``): the new message
and its reply come back as HTML fragments with the reply's id and a fresh one-time token, the conversation read
once; a refusal comes back as JSON, nothing saved. Without the header the post redirects as before."""

import re

from sqlalchemy import func, select

from tests.support.chat import SUBMISSION_RE, csrf_token, start_chat
from tests.support.queries import counting_statements
from webapp import site_settings
from webapp.extensions import db
from webapp.models import Conversation, Generation, Message, SiteSetting

FETCH = {"X-Composer": "fetch", "Accept": "application/json"}


def composer_post(client, conversation_id, text, headers=FETCH):
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    data = {
        "content": text,
        "csrf_token": csrf_token(client, f"/chat/{conversation_id}"),
        "submission_token": SUBMISSION_RE.search(page).group(1),
    }
    return client.post(f"/chat/{conversation_id}/messages", data=data, headers=headers)


def messages_in(app):
    with app.app_context():
        return db.session.scalar(select(func.count(Message.id)))


def test_the_new_message_and_its_reply_come_back_as_fragments_reading_the_conversation_once(client, auth, app):
    auth.signup()
    conversation_id = start_chat(client, "the first message")
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    data = {
        "content": "a <b>second</b> one",
        "csrf_token": csrf_token(client, f"/chat/{conversation_id}"),
        "submission_token": SUBMISSION_RE.search(page).group(1),
    }
    with counting_statements(app) as statements:
        response = client.post(f"/chat/{conversation_id}/messages", data=data, headers=FETCH)
    assert response.status_code == 200 and response.is_json
    answer = response.get_json()
    with app.app_context():
        generation = db.session.scalar(select(Generation).order_by(Generation.id.desc()))
        message = db.session.get(Message, generation.message_id)
        assert message.content == "a <b>second</b> one" and message.conversation_id == conversation_id
        generation_id, message_id = generation.id, message.id
    assert answer["generation_id"] == generation_id
    assert f'id="m{message_id}"' in answer["message_html"]
    assert "a &lt;b&gt;second&lt;/b&gt; one" in answer["message_html"]  # escaped, as on the page
    assert f'data-generation-id="{generation_id}"' in answer["reply_html"] and 'id="latest"' in answer["reply_html"]
    assert f"/chat/generations/{generation_id}/events" in answer["reply_html"]
    assert answer["submission_token"] and answer["submission_token"] != data["submission_token"]
    reads = [
        s for s in statements if s.lstrip().upper().startswith("SELECT") and re.search(r"\bFROM conversations\b", s)
    ]
    assert len(reads) == 1, reads

    # The fresh token sends the next message; the same form sent again saves nothing new.
    before = messages_in(app)
    again = client.post(f"/chat/{conversation_id}/messages", data=data, headers=FETCH)
    assert again.status_code == 200 and messages_in(app) == before
    data["submission_token"] = answer["submission_token"]
    assert client.post(f"/chat/{conversation_id}/messages", data=data, headers=FETCH).status_code == 200
    assert messages_in(app) == before + 1


def test_a_message_too_long_is_refused_as_json_and_nothing_is_saved(client, auth, app):
    app.config["MAX_MESSAGE_CHARS"] = 20
    auth.signup()
    conversation_id = start_chat(client, "short")
    before = messages_in(app)
    response = composer_post(client, conversation_id, "x" * 21)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["message"].startswith("Not sent: ") and "20" in error["message"]
    assert messages_in(app) == before


def test_a_model_no_longer_allowed_is_refused_as_json_and_nothing_is_saved(client, auth, app):
    auth.signup()
    conversation_id = start_chat(client, "on echo")
    with app.app_context():  # an admin disables the conversation's model
        model_id = db.session.get(Conversation, conversation_id).model_id
        db.session.add(SiteSetting(key=site_settings.DISABLED_MODELS, value=[model_id]))
        db.session.commit()
        site_settings.invalidate()
    before = messages_in(app)
    response = composer_post(client, conversation_id, "again")
    assert response.status_code == 403
    message = response.get_json()["error"]["message"]
    assert message.startswith("Not sent: ") and model_id in message
    assert messages_in(app) == before


def test_without_the_script_the_post_still_redirects(client, auth, app):
    auth.signup()
    conversation_id = start_chat(client, "first")
    response = composer_post(client, conversation_id, "second", headers={})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/chat/{conversation_id}#latest")
