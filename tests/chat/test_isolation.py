"""One user can never read, stop, export, change or delete another user's conversation or generation."""

import pytest

from tests.support.chat import get_conversation, get_generation, latest_generation, post_form, start_chat


@pytest.fixture
def alices(client, auth, app):
    auth.signup("alice")
    conversation_id = start_chat(client, "alice's private words")
    generation = latest_generation(app)  # queued: stopping it would have an effect
    auth.logout()
    auth.signup("mallory")
    return conversation_id, generation


def test_every_page_and_endpoint_is_404_for_another_user(client, app, alices):
    conversation_id, generation = alices
    message_id = generation.message_id
    gets = [
        f"/chat/{conversation_id}",
        f"/chat/{conversation_id}/rename",
        f"/chat/{conversation_id}/delete",
        f"/chat/{conversation_id}/export.md",
        f"/chat/{conversation_id}/export.json",
        f"/chat/{conversation_id}/messages/{message_id}/edit",
        f"/chat/generations/{generation.id}/status",
        f"/chat/generations/{generation.id}/fragment",
    ]
    for path in gets:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "private words" not in response.get_data(as_text=True), path
    posts = [
        (f"/chat/{conversation_id}/messages", {"content": "injected", "submission_token": "x" * 30}),
        (f"/chat/{conversation_id}/rename", {"title": "pwned"}),
        (f"/chat/{conversation_id}/delete", {}),
        (f"/chat/{conversation_id}/settings", {"model": "echo", "system_prompt": "pwned"}),
        (f"/chat/{conversation_id}/messages/{message_id}/edit", {"content": "pwned", "of": generation.id}),
        (f"/chat/{conversation_id}/messages/{message_id}/regenerate", {"of": generation.id}),
        (f"/chat/generations/{generation.id}/stop", {}),
    ]
    for path, data in posts:
        assert post_form(client, path, data).status_code == 404, path
    assert client.get(f"/chat/generations/{generation.id}/status").is_json  # JSON 404 for the script
    conversation = get_conversation(app, conversation_id)
    assert conversation.title == "alice's private words" and conversation.system_prompt is None
    assert get_generation(app, generation.id).status == "queued"  # not stopped
    with app.app_context():
        from webapp.extensions import db
        from webapp.models import Conversation

        assert len(db.session.get(Conversation, conversation_id).messages) == 1


def test_search_never_finds_another_users_conversations(client, alices):
    page = client.get("/chat/", query_string={"q": "private"}).get_data(as_text=True)
    assert "private words" not in page and "No conversation matches." in page


def test_a_message_id_from_another_conversation_is_404(client, app, alices):
    _conversation_id, generation = alices
    own = start_chat(client, "mallory's own")
    assert client.get(f"/chat/{own}/messages/{generation.message_id}/edit").status_code == 404
    response = post_form(client, f"/chat/{own}/messages/{generation.message_id}/regenerate", {"of": generation.id})
    assert response.status_code == 404
