"""The API keys page: create (shown once), list, revoke; only one's own keys."""

import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tests.support.forms import csrf_token
from webapp.accounts.api_keys import hash_key, user_for_key
from webapp.extensions import db
from webapp.models import ApiKey

KEY_RE = re.compile(r'<code id="new-key">(sb-[A-Za-z0-9_-]+)</code>')


def create(client, name="laptop"):
    """Post the form and follow its redirect to the page that shows the new key once."""
    return client.post(
        "/settings/api-keys",
        data={"name": name, "csrf_token": csrf_token(client, "/settings/api-keys")},
        follow_redirects=True,
    )


def test_a_new_key_is_shown_once_and_stored_hashed(client, auth, app):
    auth.signup()
    response = create(client)
    assert [r.status_code for r in response.history] == [303]
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    raw_key = KEY_RE.search(response.get_data(as_text=True)).group(1)
    assert raw_key not in client.get_cookie("session").value  # carried encrypted, not in clear
    with app.app_context():
        record = db.session.scalar(select(ApiKey))
        assert record.key_hash == hash_key(raw_key) and raw_key not in (record.prefix, record.key_hash)
        assert raw_key.startswith(record.prefix) and record.name == "laptop"
        prefix = record.prefix
        assert user_for_key(raw_key).username == "alice"
    page = client.get("/settings/api-keys").get_data(as_text=True)
    assert "laptop" in page and raw_key not in page and prefix in page
    assert 'href="/settings/api-keys"' in client.get("/chat/").get_data(as_text=True)  # linked from the nav


def test_revoking_a_key(client, auth, app):
    auth.signup()
    raw_key = KEY_RE.search(create(client).get_data(as_text=True)).group(1)
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id))
    response = client.post(
        f"/settings/api-keys/{key_id}/revoke", data={"csrf_token": csrf_token(client, "/settings/api-keys")}
    )
    assert response.status_code == 302
    with app.app_context():
        assert user_for_key(raw_key) is None
    assert "revoked" in client.get("/settings/api-keys").get_data(as_text=True)


def test_other_users_keys_are_404_and_csrf_is_required(client, auth, app):
    auth.signup("alice")
    create(client)
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id))
    assert client.post("/settings/api-keys", data={"name": "no token"}).status_code == 400
    auth.logout()
    auth.signup("mallory")
    response = client.post(
        f"/settings/api-keys/{key_id}/revoke", data={"csrf_token": csrf_token(client, "/settings/api-keys")}
    )
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(ApiKey, key_id).revoked_at is None


def test_a_name_is_required_and_the_page_needs_a_login(client, auth):
    assert client.get("/settings/api-keys").status_code == 302
    auth.signup()
    response = create(client, name="")
    assert response.status_code == 400 and "Name the key" in response.get_data(as_text=True)


def test_reloading_after_creating_makes_no_second_key(client, auth, app):
    auth.signup()
    posted = client.post(
        "/settings/api-keys", data={"name": "laptop", "csrf_token": csrf_token(client, "/settings/api-keys")}
    )
    assert posted.status_code == 303 and posted.headers["Location"] == "/settings/api-keys"
    shown = client.get("/settings/api-keys").get_data(as_text=True)
    assert KEY_RE.search(shown)
    reloaded = client.get("/settings/api-keys").get_data(as_text=True)  # what a reload does after the redirect
    assert not KEY_RE.search(reloaded) and "laptop" in reloaded
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiKey.id))) == 1


def test_key_names_are_unique_per_user(client, auth, app):
    auth.signup()
    create(client, "laptop")
    again = client.post(
        "/settings/api-keys", data={"name": "  laptop ", "csrf_token": csrf_token(client, "/settings/api-keys")}
    )
    assert again.status_code == 400
    assert "You already have a key named “laptop”" in again.get_data(as_text=True)
    auth.logout()
    auth.signup("bob")
    assert KEY_RE.search(create(client, "laptop").get_data(as_text=True))  # another user may use the name
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiKey.id))) == 2
        # The database refuses a duplicate too, whatever the code path.
        first = db.session.scalar(select(ApiKey).order_by(ApiKey.id))
        db.session.add(ApiKey(user_id=first.user_id, name="laptop", prefix="sb-x", key_hash="0" * 64))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()
