"""Every page is server-rendered HTML that works by forms: no inline script or style (the CSP forbids them)."""

import re

from tests.support.chat import latest_generation, start_chat

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)


def check_page(response):
    assert response.status_code == 200, response.request.path
    html = response.get_data(as_text=True)
    assert "<form" in html or "<a " in html
    assert not INLINE_SCRIPT.search(html), response.request.path
    assert not INLINE_HANDLER.search(html), response.request.path
    assert not STYLE_ATTRIBUTE.search(html) and "<style" not in html, response.request.path
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    return html


def test_every_chat_page_is_plain_html_with_forms(client, auth, app, run_jobs):
    auth.signup()
    conversation_id = start_chat(client, "hello **markdown**")
    generation = latest_generation(app)
    active = check_page(client.get(f"/chat/{conversation_id}"))
    # While the reply is active a browser without JavaScript refreshes the page, and Stop is a form.
    # Its target is never the current URL plus a fragment (Chromium would not reload): the r= parameter alternates.
    assert (
        f'<noscript><meta http-equiv="refresh" content="2; url=/chat/{conversation_id}?r=1#latest"></noscript>'
        in active
    )
    again = check_page(client.get(f"/chat/{conversation_id}?r=1"))
    assert f'content="2; url=/chat/{conversation_id}#latest"' in again
    assert f'action="/chat/generations/{generation.id}/stop"' in active
    run_jobs()
    done = check_page(client.get(f"/chat/{conversation_id}"))
    assert "<strong>markdown</strong>" in done and 'http-equiv="refresh"' not in done
    for form_action in (
        f"/chat/{conversation_id}/rename",
        f"/chat/{conversation_id}/settings",
        f"/chat/{conversation_id}/messages/{generation.message_id}/regenerate",
        "/chat/",
    ):
        assert f'action="{form_action}"' in done, form_action
    assert f'href="/chat/{conversation_id}/delete"' in done
    assert f'href="/chat/{conversation_id}/export.md"' in done and f'href="/chat/{conversation_id}/export.json"' in done
    assert '<form class="search" method="get"' in done
    for path in (
        "/chat/",
        "/chat/?q=hello",
        f"/chat/{conversation_id}/rename",
        f"/chat/{conversation_id}/delete",
        f"/chat/{conversation_id}/messages/{generation.message_id}/edit",
        "/settings/models/",
        f"/chat/{conversation_id}?show={generation.id}",
    ):
        check_page(client.get(path))
