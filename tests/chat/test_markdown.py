"""Replies render as Markdown, sanitized: no HTML or script from a model or a user can run."""

import pytest

from tests.support.chat import latest_generation, start_chat
from tests.support.xss import XSS_CORPUS, audit
from webapp.markdown import ALLOWED_TAGS, render_markdown


@pytest.mark.parametrize("payload", XSS_CORPUS)
def test_xss_payload_renders_harmless(payload):
    html = str(render_markdown(payload))
    result = audit(html)
    assert result.tags <= ALLOWED_TAGS, (payload, html)
    assert not result.problems, (payload, html)
    assert "<script" not in html.lower()


def test_markdown_features_survive():
    html = str(
        render_markdown(
            "# Title\n\n**bold** _em_ ~~gone~~ `code`\n\n- one\n- two\n\n1. first\n\n"
            "```python\nprint('<hi>')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> quote\n\n[site](https://example.com)"
        )
    )
    for fragment in (
        "<h1>Title</h1>",
        "<strong>bold</strong>",
        "<em>em</em>",
        "<s>gone</s>",
        "<code>code</code>",
        "<li>one</li>",
        "<ol>",
        '<code class="language-python">',
        '<span class="tok-nb">print</span>',
        "'&lt;hi&gt;'",
        "<table>",
        "<td>1</td>",
        "<blockquote>",
        '<a href="https://example.com" rel="noopener noreferrer nofollow">site</a>',
    ):
        assert fragment in html, (fragment, html)


def test_a_reply_full_of_payloads_is_inert_on_the_page(client, auth, app, run_jobs):
    """The echo model repeats the payloads: the page and the fragment the script swaps in stay safe."""
    auth.signup()
    payload = "\n\n".join(XSS_CORPUS)
    conversation_id = start_chat(client, payload)
    run_jobs()
    generation = latest_generation(app)
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    fragment = client.get(f"/chat/generations/{generation.id}/fragment").get_data(as_text=True)
    for html in (page, fragment):
        body = html.split('<ol class="messages">', 1)[-1].split('id="chat-announcer"', 1)[0]
        result = audit(body)
        assert "script" not in result.tags and "img" not in result.tags and "iframe" not in result.tags
        assert not result.problems, result.problems
    assert '<div class="content markdown">' in fragment
