"""A browser, roughly: the pages and forms of a chat through an async httpx client, as the load tests use them."""

from __future__ import annotations

import re
from collections import Counter

import httpx

from tests.support.forms import COMPOSER_RE, CSRF_RE, SUBMISSION_RE

REPLY_RE = re.compile(
    r'data-generation-id="(\d+)"\s+data-status="(\w+)"\s+data-cursor="(\d+)"\s+'
    r'data-status-url="([^"]+)"'
)
STREAMING_RE = re.compile(r'data-generation-id="%s".*?<div class="content streaming">(.*?)</div>', re.S)


async def get_page(client: httpx.AsyncClient, url: str) -> str:
    response = await client.get(url)
    assert response.status_code == 200, f"GET {url}: {response.status_code}"
    return response.text


# How often post_form sent a form again after a cut connection (the load tests print it; the soak expects 0).
RESENT_FORMS = Counter()


async def post_form(client: httpx.AsyncClient, url: str, data: dict) -> httpx.Response:
    """POST a chat form; on a connection cut before the answer, send the same form once more, as a browser's
    user would. Its one-time submission token makes the second send find the first one's message, if any."""
    try:
        return await client.post(url, data=data)
    except (httpx.ReadError, httpx.RemoteProtocolError):
        RESENT_FORMS["resent"] += 1
        return await client.post(url, data=data)


def composer(page: str) -> tuple[str, str, str]:
    """The chat composer's action, CSRF token and one-time submission token."""
    form = COMPOSER_RE.search(page)
    assert form, "no composer form on the page"
    return form.group(1), CSRF_RE.search(form.group(2)).group(1), SUBMISSION_RE.search(form.group(2)).group(1)


class Recorder:
    """Every response's status (an httpx response hook), so no 5xx can hide behind a retry."""

    def __init__(self):
        self.statuses: Counter = Counter()
        self.server_errors: list[str] = []

    async def __call__(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            await response.aread()
            self.server_errors.append(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:200]}"
            )


async def sign_up(client: httpx.AsyncClient, url: str, username: str, password: str = "a long test passphrase") -> None:
    """Sign up through the real form at ``url``; the client keeps the session cookie."""
    csrf = CSRF_RE.search(await get_page(client, f"{url}/auth/signup")).group(1)
    response = await client.post(
        f"{url}/auth/signup",
        data={"username": username, "password": password, "confirm": password, "csrf_token": csrf},
    )
    assert response.status_code == 302, response.text[:300]
