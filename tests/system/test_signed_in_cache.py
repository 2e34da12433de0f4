"""A sign-in ended on one web process is refused on its very next request on the other, although each
process keeps the sign-ins it has looked up (webapp/accounts/signed_in.py): two gunicorns, one process each,
on one database and one Valkey. Entries live 600 s here, so only the change counter in Redis can end them."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.forms import CSRF_RE
from tests.support.stack import Stack
from tests.support.waiting import wait_for

PASSWORD = "correct horse"


def form_token(browser: httpx.Client, path: str) -> str:
    return CSRF_RE.search(browser.get(path).text)[1]


def signs_in(browser: httpx.Client) -> bool:
    response = browser.get("/chat/")
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def sign_up(browser: httpx.Client, username: str) -> None:
    form = {
        "username": username,
        "password": PASSWORD,
        "confirm": PASSWORD,
        "csrf_token": form_token(browser, "/auth/signup"),
    }
    assert browser.post("/auth/signup", data=form).status_code == 302


def sign_in(url: str, username: str) -> httpx.Client:
    browser = httpx.Client(base_url=url, timeout=30)
    form = {"username": username, "password": PASSWORD, "csrf_token": form_token(browser, "/auth/login")}
    assert browser.post("/auth/login", data=form).status_code == 302
    return browser


def same_cookies(browser: httpx.Client, url: str) -> httpx.Client:
    """Another client, at ``url``, holding ``browser``'s cookies (the other web process of one site)."""
    other = httpx.Client(base_url=url, timeout=30)
    for cookie in browser.cookies.jar:
        other.cookies.set(cookie.name, cookie.value)
    return other


@pytest.fixture
def stack(tmp_path, redis_url):
    with Stack(
        tmp_path,
        f"sqlite:///{tmp_path / 'switchboard.db'}",
        redis_url,
        servers=2,
        web_processes=1,
        workers=0,
        env={"SIGNED_IN_CACHE_SECONDS": "600"},
    ) as running:
        yield running


def test_a_sign_in_ended_on_one_process_is_refused_at_once_on_the_other(stack, tmp_path):
    here, there = stack.urls
    database = create_engine(f"sqlite:///{tmp_path / 'switchboard.db'}")
    browsers: list[httpx.Client] = []

    def browser(client: httpx.Client) -> httpx.Client:
        browsers.append(client)
        return client

    def cached_there(client: httpx.Client, username: str) -> bool:
        """Whether ``there`` serves this sign-in from its cache: ended behind the app's back, it is still
        accepted (then it is live again, unseen by the app)."""
        assert signs_in(client)  # looked up, and kept once that process's reader hears changes
        ended = text(
            "UPDATE user_sessions SET revoked_at = CURRENT_TIMESTAMP WHERE revoked_at IS NULL AND user_id = "
            "(SELECT id FROM users WHERE username = :username)"
        )
        with database.begin() as connection:
            ids = [row[0] for row in connection.execute(text("SELECT id FROM user_sessions WHERE revoked_at IS NULL"))]
            connection.execute(ended, {"username": username})
        try:
            return signs_in(client)
        finally:
            with database.begin() as connection:
                for record_id in ids:
                    connection.execute(
                        text("UPDATE user_sessions SET revoked_at = NULL WHERE id = :id"), {"id": record_id}
                    )

    try:
        admin = browser(httpx.Client(base_url=here, timeout=30))
        sign_up(admin, "root")  # the first account: the admin
        sign_up(browser(httpx.Client(base_url=here, timeout=30)), "alice")
        with database.connect() as connection:
            alice_id = connection.scalar(text("SELECT id FROM users WHERE username = 'alice'"))

        def end_on_the_sessions_page(_alice_here: httpx.Client) -> None:
            with database.connect() as connection:  # alice_here's: her newest sign-in
                record_id = connection.scalar(
                    text("SELECT max(id) FROM user_sessions WHERE user_id = :id"), {"id": alice_id}
                )
            phone = browser(sign_in(here, "alice"))  # ends it from her phone
            token = form_token(phone, "/settings/sessions")
            assert phone.post(f"/settings/sessions/{record_id}/end", data={"csrf_token": token}).status_code == 302

        def sign_out_everywhere(alice_here: httpx.Client) -> None:
            token = form_token(alice_here, "/settings/sessions")
            assert alice_here.post("/settings/sessions/end-all", data={"csrf_token": token}).status_code == 302

        def disable(_alice_here: httpx.Client) -> None:
            token = form_token(admin, f"/admin/users/{alice_id}")
            response = admin.post(f"/admin/users/{alice_id}/status", data={"disabled": "1", "csrf_token": token})
            assert response.status_code == 302
            token = form_token(admin, f"/admin/users/{alice_id}")
            response = admin.post(f"/admin/users/{alice_id}/status", data={"disabled": "0", "csrf_token": token})
            assert response.status_code == 302

        def change_password(_alice_here: httpx.Client) -> None:
            token = form_token(admin, f"/admin/users/{alice_id}")
            form = {"password": PASSWORD, "confirm": PASSWORD, "csrf_token": token}
            assert admin.post(f"/admin/users/{alice_id}/password", data=form).status_code == 302

        for end in (end_on_the_sessions_page, sign_out_everywhere, disable, change_password):
            alice_here = browser(sign_in(here, "alice"))
            alice_there = browser(same_cookies(alice_here, there))
            wait_for(lambda: cached_there(alice_there, "alice"), 30, f"{end.__name__}: the other process caches it")
            assert signs_in(alice_here)
            end(alice_here)
            assert not signs_in(alice_there), f"{end.__name__}: still signed in on the other process"
            assert not signs_in(alice_here), f"{end.__name__}: still signed in on the process that ended it"
    finally:
        for client in browsers:
            client.close()
        database.dispose()
