"""The moment-long cache of sign-ins (webapp/accounts/signed_in.py): a warm sign-in loads with no SQL, and
every change to a user or a sign-in ends every app's entries at once (a counter in Redis each hit reads first).

A second app on the same database and Redis stands for a second web process (tests/system/test_signed_in_cache.py
does it with two gunicorns)."""

import pytest
from sqlalchemy import select

from tests.support.accounts import sign_in, signed_in
from tests.support.forms import csrf_token
from tests.support.queries import counting_statements
from webapp import create_app
from webapp.accounts import create_user
from webapp.admin import service
from webapp.extensions import db
from webapp.models import User

LONG = 600.0  # far longer than any test: only a change heard can end an entry


@pytest.fixture
def users(app):
    app.config["SIGNED_IN_CACHE_SECONDS"] = LONG
    with app.app_context():
        alice = create_user("alice", "correct horse")
        create_user("root", "correct horse", role="admin")
        db.session.commit()
        return {"alice": alice.id}


@pytest.fixture
def other_process(app, app_config):
    """A second app on the same database and Redis, with its own cache and pub/sub reader."""
    other = create_app({**app_config, "SIGNED_IN_CACHE_SECONDS": LONG})
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def warm(app, browser):
    """Sign-ins of ``browser`` now come from ``app``'s cache."""
    assert signed_in(browser)  # looked up, and kept
    with counting_statements(app) as statements:
        assert signed_in(browser)
    assert not any("user_sessions" in statement for statement in statements), statements


def browser_of(app, client):
    """``client``'s cookies in a browser of ``app``."""
    browser = app.test_client()
    browser.set_cookie("session", client.get_cookie("session").value)
    return browser


def test_a_warm_sign_in_loads_its_user_without_sql_and_a_sign_out_ends_it_at_once(app, users):
    alice = sign_in(app)
    stolen = browser_of(app, alice)
    warm(app, alice)
    response = alice.post("/auth/logout", data={"csrf_token": csrf_token(alice, "/chat/")})
    assert response.status_code == 302
    assert not signed_in(stolen)


def test_a_profile_change_is_seen_on_the_next_request(app, users):
    alice = sign_in(app)
    warm(app, alice)
    assert (
        alice.post("/settings/theme", data={"theme": "dark", "csrf_token": csrf_token(alice, "/chat/")}).status_code
        == 303
    )
    assert 'data-theme="dark"' in alice.get("/chat/").get_data(as_text=True)


def test_ending_a_sign_in_on_one_process_refuses_it_on_the_other_at_once(app, users, other_process):
    alice = sign_in(app)
    elsewhere = browser_of(other_process, alice)
    warm(other_process, elsewhere)
    sessions_page = alice.get("/settings/sessions").get_data(as_text=True)
    assert "/settings/sessions/" in sessions_page
    with app.app_context():
        from webapp.models import UserSession

        record_id = db.session.scalar(select(UserSession.id))
    phone = sign_in(app)  # ends alice's first sign-in from a second browser, on the sessions page
    response = phone.post(
        f"/settings/sessions/{record_id}/end", data={"csrf_token": csrf_token(phone, "/settings/sessions")}
    )
    assert response.status_code == 302
    assert not signed_in(elsewhere)
    assert signed_in(browser_of(other_process, phone))


@pytest.mark.parametrize("action", ["disable", "reset_password", "sign_out_everywhere"])
def test_every_revocation_reaches_the_other_process_at_once(app, users, other_process, action):
    alice = sign_in(app)
    elsewhere = browser_of(other_process, alice)
    warm(other_process, elsewhere)
    if action == "sign_out_everywhere":
        alice.post("/settings/sessions/end-all", data={"csrf_token": csrf_token(alice, "/settings/sessions")})
    else:
        with app.app_context():
            root = db.session.scalar(select(User).where(User.username == "root"))
            user = db.session.get(User, users["alice"])
            if action == "disable":
                service.set_disabled(root, user, True)
            else:
                service.reset_password(root, user, "correct horse")
            db.session.commit()
    assert not signed_in(elsewhere)


def test_without_redis_the_sign_in_is_read_from_the_database(app, app_config, users, tmp_path):
    cut_off = create_app(
        {**app_config, "SIGNED_IN_CACHE_SECONDS": LONG, "REDIS_URL": f"unix://{tmp_path / 'gone.sock'}"}
    )
    alice = sign_in(app)
    browser = browser_of(cut_off, alice)
    try:
        for _ in range(2):
            with counting_statements(cut_off) as statements:
                assert signed_in(browser)
            assert any("user_sessions" in statement for statement in statements)
    finally:
        with cut_off.app_context():
            db.session.remove()
            db.engine.dispose()
