"""Conversations: search, rename, delete with confirmation, export, settings, regenerate, retry, edit."""

import json
import re

from sqlalchemy import func, select

from tests.support.chat import get_conversation, get_generation, latest_generation, post_form, send, start_chat
from tests.support.forms import page_tokens
from tests.support.queries import counting_statements
from webapp.extensions import db
from webapp.models import Conversation, Generation, Message
from webapp.queue import get_queue


def sidebar_titles(client, query=None):
    page = client.get("/chat/", query_string={"q": query} if query else None).get_data(as_text=True)
    sidebar = page.split('<div class="conversations">')[1].split("</aside>")[0]
    return sidebar


def test_sidebar_newest_first_and_search_by_title_and_text(client, auth, app, run_jobs):
    auth.signup()
    first = start_chat(client, "pelicans are large water birds")
    second = start_chat(client, "recipe for lentil soup")
    run_jobs()
    send(client, "and what about 100% rye_bread?", conversation_id=first)
    sidebar = sidebar_titles(client)
    assert sidebar.index("pelicans") < sidebar.index("lentil")  # the first one has the newest message
    assert "lentil" in sidebar_titles(client, "LENTIL") and "pelicans" not in sidebar_titles(client, "lentil")
    assert "pelicans" in sidebar_titles(client, "rye_bread")  # message text, not the title
    assert "pelicans" in sidebar_titles(client, "100%") and "lentil" not in sidebar_titles(client, "100%")
    assert "lentil" not in sidebar_titles(client, "%")  # LIKE wildcards are literal
    assert "No conversation matches." in sidebar_titles(client, "zebra")
    assert second


def test_rename_by_form_and_refuse_blank(client, auth, app):
    auth.signup()
    conversation_id = start_chat(client, "hello")
    page = client.get(f"/chat/{conversation_id}/rename")
    assert page.status_code == 200 and 'value="hello"' in page.get_data(as_text=True)
    response = post_form(client, f"/chat/{conversation_id}/rename", {"title": "  Birds   of  prey "})
    assert response.status_code == 302
    assert get_conversation(app, conversation_id).title == "Birds of prey"
    response = post_form(client, f"/chat/{conversation_id}/rename", {"title": "   "})
    assert response.status_code == 400 and "Give it a title." in response.get_data(as_text=True)
    assert get_conversation(app, conversation_id).title == "Birds of prey"


def test_delete_asks_first_then_deletes_everything(client, auth, app):
    auth.signup()
    conversation_id = start_chat(client, "delete me")
    generation = latest_generation(app)
    confirm = client.get(f"/chat/{conversation_id}/delete")
    assert confirm.status_code == 200
    text = confirm.get_data(as_text=True)
    assert "Delete this conversation?" in text and 'method="post"' in text
    assert get_conversation(app, conversation_id) is not None  # a GET deletes nothing
    response = post_form(client, f"/chat/{conversation_id}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/chat/"
    with app.app_context():
        assert db.session.get(Conversation, conversation_id) is None
        assert db.session.scalar(select(func.count(Message.id))) == 0
        assert db.session.scalar(select(func.count(Generation.id))) == 0
        assert generation.job_id not in get_queue().job_ids  # its queued reply was taken off the queue
    assert client.get(f"/chat/{conversation_id}").status_code == 404


def test_export_markdown_and_json(client, auth, app, run_jobs):
    auth.signup()
    conversation_id = start_chat(client, "export *this*")
    run_jobs()
    md = client.get(f"/chat/{conversation_id}/export.md")
    assert md.status_code == 200 and md.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert md.headers["Content-Disposition"] == f'attachment; filename="conversation-{conversation_id}.md"'
    body = md.get_data(as_text=True)
    assert body.startswith("# export this") and "## You\n\nexport *this*" in body and "## echo" in body
    data = client.get(f"/chat/{conversation_id}/export.json")
    assert data.mimetype == "application/json" and "attachment" in data.headers["Content-Disposition"]
    exported = json.loads(data.get_data(as_text=True))
    assert exported["title"] == "export this" and exported["model"] == "echo"
    [message] = exported["messages"]
    assert message["content"] == "export *this*"
    assert message["replies"][0]["status"] == "succeeded" and "export *this*" in message["replies"][0]["text"]


def test_model_picker_groups_by_provider_with_the_default_selected(client, auth):
    auth.signup()
    page = client.get("/chat/").get_data(as_text=True)
    assert '<optgroup label="Echo (offline)">' in page
    assert '<option value="echo" selected>' in page
    assert 'value="gpt-4o"' in page  # the OpenAI models, offered by the provider


def test_settings_change_model_then_options_validated_by_its_schema(client, auth, app):
    auth.signup()
    conversation_id = start_chat(client, "hi")
    path = f"/chat/{conversation_id}/settings"
    response = post_form(client, path, {"model": "gpt-4o", "system_prompt": "Be brief."})
    assert response.status_code == 302
    conv = get_conversation(app, conversation_id)
    assert conv.model_id == "gpt-4o" and conv.system_prompt == "Be brief."
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    for name in ("temperature", "max_tokens", "top_p", "frequency_penalty", "seed"):
        assert f'name="option-{name}"' in page  # rendered from OpenAIOptions
    assert 'name="option-delay"' not in page  # the echo model's option is not the OpenAI model's
    bad = post_form(
        client,
        path,
        {"model": "gpt-4o", "system_prompt": "Be brief.", "option-temperature": "5", "option-max_tokens": "many"},
    )
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "less than or equal to 2" in text and "valid integer" in text
    assert 'value="5"' in text  # the user's input is kept for correction
    assert get_conversation(app, conversation_id).options == {}
    good = post_form(
        client,
        path,
        {
            "model": "gpt-4o",
            "system_prompt": "Be brief.",
            "option-temperature": "0.3",
            "option-max_tokens": "200",
            "option-stop": "",
            "option-bogus": "1",
        },
    )
    assert good.status_code == 302
    assert get_conversation(app, conversation_id).options == {"temperature": 0.3, "max_tokens": 200}
    # Switching model keeps only what the new model accepts.
    post_form(client, path, {"model": "echo", "system_prompt": ""})
    conv = get_conversation(app, conversation_id)
    assert conv.model_id == "echo" and conv.options == {} and conv.system_prompt is None


def test_settings_refuse_an_unknown_model(client, auth, app):
    auth.signup()
    conversation_id = start_chat(client, "hi")
    response = post_form(client, f"/chat/{conversation_id}/settings", {"model": "no-such-model"})
    assert response.status_code == 400 and "Unknown model" in response.get_data(as_text=True)
    assert get_conversation(app, conversation_id).model_id == "echo"


def test_new_reply_uses_the_conversation_settings(client, auth, app, run_jobs, fake_openai):
    auth.signup()
    conversation_id = start_chat(client, "first", model="gpt-4o")
    post_form(
        client,
        f"/chat/{conversation_id}/settings",
        {"model": "gpt-4o", "system_prompt": "You are terse.", "option-temperature": "0.5"},
    )
    run_jobs()
    send(client, "second", conversation_id=conversation_id)
    run_jobs()
    request = fake_openai.chat_requests[-1].json
    assert request["messages"][0] == {"role": "system", "content": "You are terse."}
    assert request["temperature"] == 0.5
    assert [m["content"] for m in request["messages"][1:]] == ["first", "Fake answer to: first", "second"]


def test_regenerate_keeps_the_old_reply_browsable(client, auth, app, run_jobs):
    auth.signup()
    conversation_id = start_chat(client, "say it again")
    run_jobs()
    first = latest_generation(app)
    message_id = first.message_id
    path = f"/chat/{conversation_id}/messages/{message_id}/regenerate"
    assert post_form(client, path, {"of": first.id}).status_code == 302
    assert post_form(client, path, {"of": first.id}).status_code == 302  # resent form: no third reply
    run_jobs()
    with app.app_context():
        replies = db.session.scalars(select(Generation).where(Generation.message_id == message_id)).all()
        assert [g.status for g in replies] == ["succeeded", "succeeded"]
        second_id = replies[1].id
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "2/2" in page and f"show={first.id}" in page and 'aria-label="Previous version"' in page
    older = client.get(f"/chat/{conversation_id}", query_string={"show": first.id}).get_data(as_text=True)
    assert "1/2" in older and f'data-generation-id="{first.id}"' in older and f"show={second_id}" in older
    assert "Regenerate" not in older  # only the current reply can be regenerated


def test_failure_shows_a_clear_message_and_retry_works(client, auth, app, run_jobs, fake_openai):
    auth.signup()
    fake_openai.fail_next("rate_limit", times=3, retry_after=1)  # every attempt the worker makes
    conversation_id = start_chat(client, "are you there?", model="gpt-4o")
    run_jobs()
    failed = latest_generation(app)
    assert failed.status == "failed" and failed.error_code == "rate_limited"
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "The provider is rate limiting requests." in page and "Try again in 1 s." in page
    assert ">Retry</button>" in page
    status = client.get(f"/chat/generations/{failed.id}/status").get_json()
    assert status["error_code"] == "rate_limited" and status["retry_after"] == 1.0
    post_form(client, f"/chat/{conversation_id}/messages/{failed.message_id}/regenerate", {"of": failed.id})
    run_jobs()
    retried = latest_generation(app)
    assert retried.id != failed.id and retried.status == "succeeded"
    assert retried.text == "Fake answer to: are you there?"


def test_cut_off_keeps_the_partial_text_and_missing_key_says_so(client, auth, app, run_jobs, fake_openai):
    auth.signup()
    fake_openai.reply = "one two three four five six seven eight"
    fake_openai.fail_next("cut", after=3)
    conversation_id = start_chat(client, "long answer", model="gpt-4o")
    run_jobs()
    cut = latest_generation(app)
    assert cut.status == "failed" and cut.error_code == "content_cut_off" and cut.text == "one two three "
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "The answer was cut off before it was complete." in page and "one two three" in page
    # Asked again, then the key is removed before the worker runs it: it fails saying why.
    post_form(client, f"/chat/{conversation_id}/messages/{cut.message_id}/regenerate", {"of": cut.id})
    app.config["OPENAI_API_KEY"] = None
    from webapp import llm

    llm.configure(app.config)
    run_jobs()
    missing = latest_generation(app)
    assert missing.status == "failed" and missing.error_code == "model_not_configured"
    assert "The provider of this model is not set up." in client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    # Asking again now is refused before anything is saved: the page says the model is not set up.
    response = post_form(
        client,
        f"/chat/{conversation_id}/messages/{missing.message_id}/regenerate",
        {"of": missing.id},
        follow_redirects=True,
    )
    assert "is not set up on this server yet" in response.get_data(as_text=True)
    assert latest_generation(app).id == missing.id


def test_regenerate_while_running_is_refused(client, auth, app):
    auth.signup()
    conversation_id = start_chat(client, "still queued")
    generation = latest_generation(app)
    response = post_form(
        client,
        f"/chat/{conversation_id}/messages/{generation.message_id}/regenerate",
        {"of": generation.id},
        follow_redirects=True,
    )
    assert "stop it first" in response.get_data(as_text=True)
    assert get_generation(app, generation.id).status == "queued"
    with app.app_context():
        assert db.session.scalar(select(func.count(Generation.id))) == 1


def test_a_message_writes_its_rows_once_and_reads_nothing_again_after_saving(client, auth, app):
    """A new chat is one INSERT of the conversation (title and time included); after the commit the reply is
    queued from what the request holds: the last statement of a turn is the reply's INSERT."""
    auth.signup()
    csrf, token = page_tokens(client, "/chat/")
    with counting_statements(app) as statements:
        response = client.post(
            "/chat/", data={"content": "count me", "csrf_token": csrf, "submission_token": token.group(1)}
        )
    assert response.status_code == 302
    touching_conversations = [s for s in statements if re.search(r"^\s*(INSERT INTO|UPDATE) conversations\b", s)]
    assert len(touching_conversations) == 1 and touching_conversations[0].lstrip().startswith("INSERT")
    assert statements[-1].lstrip().startswith("INSERT INTO generations"), statements
    conversation_id = int(response.headers["Location"].split("/chat/")[1].split("#")[0])
    assert get_conversation(app, conversation_id).title == "count me"

    csrf, token = page_tokens(client, f"/chat/{conversation_id}")
    with counting_statements(app) as statements:
        response = client.post(
            f"/chat/{conversation_id}/messages",
            data={"content": "and me", "csrf_token": csrf, "submission_token": token.group(1)},
        )
    assert response.status_code == 302
    assert statements[-1].lstrip().startswith("INSERT INTO generations"), statements
    assert len([s for s in statements if s.lstrip().startswith("SELECT users.")]) == 1, statements  # its sign-in
