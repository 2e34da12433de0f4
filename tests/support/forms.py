"""Pages and their forms: the CSRF and one-time submission tokens the forms carry."""

from __future__ import annotations

import re

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SUBMISSION_RE = re.compile(r'name="submission_token"[^>]*value="([^"]+)"')
# The chat composer: its action (group 1) and the rest of the form (group 2).
COMPOSER_RE = re.compile(r'<form class="composer"[^>]*? action="([^"]+)"([^>]*>.*?)</form>', re.S)


def csrf_token(client, path: str) -> str:
    page = client.get(path)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def page_tokens(client, path):
    """The CSRF token and the submission-token match (or None) of the page at ``path``."""
    page = client.get(path).get_data(as_text=True)
    return CSRF_RE.search(page).group(1), SUBMISSION_RE.search(page)


def post_form(client, path, data=None, page=None, **kwargs):
    """POST ``data`` to ``path`` with a CSRF token taken from ``page`` (default: the chat index)."""
    csrf, _ = page_tokens(client, page or "/chat/")
    return client.post(path, data={"csrf_token": csrf, **(data or {})}, **kwargs)
