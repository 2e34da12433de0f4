"""Titles without Markdown, cut at a word; the theme remembered per account and rendered by the server."""

import re

from tests.support.chat import get_conversation, post_form, start_chat
from webapp.conversations.titles import title_from


def test_the_title_is_the_first_message_without_markdown_cut_at_a_word(client, auth, app):
    auth.signup()
    conversation_id = start_chat(
        client,
        "## Explain **asyncio** vs `threads` in [Python](https://python.org), "
        "with examples, trade-offs and pitfalls please",
    )
    title = get_conversation(app, conversation_id).title
    assert title == "Explain asyncio vs threads in Python, with examples…"
    assert len(title) <= 60 and not re.search(r"[*#`\[\]]", title)
    assert title_from("short *one*") == "short one"
    assert title_from("x" * 100) == "x" * 59 + "…"  # one long word: cut inside it
    assert title_from("<b>html</b> too") == "html too"


def test_the_theme_is_remembered_and_rendered_without_script(client, auth, app):
    auth.signup()
    page = client.get("/chat/").get_data(as_text=True)
    assert '<html lang="en">' in page and 'name="theme" value="light"' in page  # system: the next is light
    response = post_form(
        client, "/settings/theme", {"theme": "dark"}, headers={"Referer": "http://localhost/settings/models/"}
    )
    assert response.status_code == 303 and response.headers["Location"] == "http://localhost/settings/models/"
    page = client.get("/settings/models/").get_data(as_text=True)
    assert '<html lang="en" data-theme="dark">' in page and '<meta name="color-scheme" content="dark">' in page
    bad = post_form(client, "/settings/theme", {"theme": "neon"}, follow_redirects=True)
    assert "That theme does not exist" in bad.get_data(as_text=True)
    assert 'data-theme="dark"' in bad.get_data(as_text=True)
    away = post_form(client, "/settings/theme", {"theme": "light"}, headers={"Referer": "https://evil.example/"})
    assert away.headers["Location"] == "/chat/"  # never back to another site
