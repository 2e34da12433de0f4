"""Users page: search, create, disable/enable, promote/demote, reset password, limits; last-admin protection."""

from sqlalchemy import select

from tests.support.admin import PASSWORD, get_user, make_user, post
from webapp.extensions import db
from webapp.models import AuditEvent


def user_id(app, username):
    return get_user(app, username).id


def test_search_and_create(app, client, admin):
    make_user(app, "alice")
    make_user(app, "bob")
    page = client.get("/admin/users?q=ali").get_data(as_text=True)
    assert "alice" in page and ">bob<" not in page
    response = post(
        client, "/admin/users", {"username": "carol", "password": "long enough pw", "role": "user"}, page="/admin/users"
    )
    assert response.status_code == 302
    assert get_user(app, "carol").check_password("long enough pw")
    response = post(
        client, "/admin/users", {"username": "Carol", "password": "long enough pw", "role": "user"}, page="/admin/users"
    )
    assert response.status_code == 400 and "That username is taken." in response.get_data(as_text=True)
    response = post(
        client, "/admin/users", {"username": "dave", "password": "short", "role": "user"}, page="/admin/users"
    )
    assert response.status_code == 400 and "Use at least 10 characters." in response.get_data(as_text=True)


def test_disable_ends_sessions_at_once_and_enable_restores_login(app, admin, auth):
    make_user(app, "bob")
    other = app.test_client()
    from tests.support.accounts import AuthActions

    AuthActions(other).login("bob")
    assert other.get("/chat/").status_code == 200
    bob_id = user_id(app, "bob")
    client = auth._client
    post(client, f"/admin/users/{bob_id}/status", {"disabled": "1"}, page=f"/admin/users/{bob_id}")
    assert get_user(app, "bob").is_disabled
    assert other.get("/chat/").status_code == 302  # the open session ended
    assert "Wrong username or password." in AuthActions(other).login("bob").get_data(as_text=True)
    post(client, f"/admin/users/{bob_id}/status", {"disabled": "0"}, page=f"/admin/users/{bob_id}")
    assert AuthActions(other).login("bob").status_code == 302
    assert other.get("/chat/").status_code == 200


def test_promote_and_demote(app, client, admin):
    make_user(app, "bob")
    bob_id = user_id(app, "bob")
    post(client, f"/admin/users/{bob_id}/role", {"role": "admin"}, page=f"/admin/users/{bob_id}")
    assert get_user(app, "bob").role == "admin"
    post(client, f"/admin/users/{bob_id}/role", {"role": "user"}, page=f"/admin/users/{bob_id}")
    assert get_user(app, "bob").role == "user"
    response = post(client, f"/admin/users/{bob_id}/role", {"role": "superuser"}, page=f"/admin/users/{bob_id}")
    assert response.status_code == 400


def test_last_admin_cannot_demote_or_disable_themselves(app, client, admin):
    for data, path in (({"role": "user"}, "role"), ({"disabled": "1"}, "status")):
        response = post(client, f"/admin/users/{admin}/{path}", data, page=f"/admin/users/{admin}")
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "is the last admin" in page
        root = get_user(app, "root")
        assert root.role == "admin" and not root.is_disabled
    assert client.get("/admin/").status_code == 200
    # With a second admin, the first may step down.
    make_user(app, "bob", role="admin")
    post(client, f"/admin/users/{admin}/role", {"role": "user"}, page=f"/admin/users/{admin}")
    assert get_user(app, "root").role == "user"
    assert client.get("/admin/").status_code == 403


def test_a_disabled_admin_does_not_count(app, client, admin):
    bob_id = make_user(app, "bob", role="admin")
    post(client, f"/admin/users/{bob_id}/status", {"disabled": "1"}, page=f"/admin/users/{bob_id}")
    response = post(client, f"/admin/users/{admin}/role", {"role": "user"}, page=f"/admin/users/{admin}")
    assert "is the last admin" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert get_user(app, "root").role == "admin"


def test_reset_password_and_limits(app, client, admin, auth):
    bob_id = make_user(app, "bob")
    response = post(
        client,
        f"/admin/users/{bob_id}/password",
        {"password": "new password 1", "confirm": "new password 1"},
        page=f"/admin/users/{bob_id}",
    )
    assert response.status_code == 302
    bob = get_user(app, "bob")
    assert bob.check_password("new password 1") and not bob.check_password(PASSWORD)
    response = post(
        client, f"/admin/users/{bob_id}/password", {"password": "x", "confirm": "x"}, page=f"/admin/users/{bob_id}"
    )
    assert response.status_code == 400
    response = post(
        client,
        f"/admin/users/{bob_id}/limits",
        {"requests_per_minute": "30", "tokens_per_day": "50000"},
        page=f"/admin/users/{bob_id}",
    )
    assert response.status_code == 302
    bob = get_user(app, "bob")
    assert (bob.requests_per_minute, bob.tokens_per_day) == (30, 50000)
    post(
        client,
        f"/admin/users/{bob_id}/limits",
        {"requests_per_minute": "", "tokens_per_day": ""},
        page=f"/admin/users/{bob_id}",
    )
    bob = get_user(app, "bob")
    assert (bob.requests_per_minute, bob.tokens_per_day) == (None, None)
    response = post(
        client, f"/admin/users/{bob_id}/limits", {"requests_per_minute": "-1"}, page=f"/admin/users/{bob_id}"
    )
    assert response.status_code == 400
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.target == "user:bob")).all()
        assert {e.action for e in events} >= {"user.password_reset", "user.limits"}
        assert all("new password 1" not in repr((e.before, e.after)) for e in events)


def test_unknown_user_is_404(client, admin):
    assert client.get("/admin/users/999").status_code == 404


def test_default_limits_are_stored_for_the_limits_module(app, client, admin):
    from webapp import site_settings

    response = post(
        client,
        "/admin/users/default-limits",
        {"defaults-requests_per_minute": "20", "defaults-tokens_per_day": "0"},
        page="/admin/users",
        token_field="defaults-csrf_token",
    )
    assert response.status_code == 302
    with app.app_context():
        site = site_settings.snapshot().site
        assert site[site_settings.DEFAULT_REQUESTS_PER_MINUTE] == 20
        assert site[site_settings.DEFAULT_TOKENS_PER_DAY] == 0
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "limits.defaults")) is not None
    page = client.get("/admin/users").get_data(as_text=True)
    assert 'value="20"' in page
    response = post(
        client,
        "/admin/users/default-limits",
        {"defaults-requests_per_minute": "-5"},
        page="/admin/users",
        token_field="defaults-csrf_token",
    )
    assert response.status_code == 400


def test_users_page_title_is_plain_text(client, admin):
    import re

    body = client.get("/admin/users").get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", body, re.S).group(1)
    assert title.strip() == "Users · Admin · Switchboard"
    assert body.count('id="default-limits"') == 1
