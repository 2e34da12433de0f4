"""Server-side sign-ins (webapp/accounts/sessions.py): a copied session or remember-me cookie dies with sign-out,
"sign out everywhere", an admin's disable or password reset; the user loader stays one indexed read."""

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from tests.support.accounts import AuthActions, sign_in, signed_in
from tests.support.forms import csrf_token
from webapp import create_app
from webapp.accounts import create_user, sessions
from webapp.admin import service
from webapp.extensions import db
from webapp.models import User, UserSession, utcnow

REMEMBER_COOKIE = "remember_token"


def copy_of(app, client, names=("session", REMEMBER_COOKIE)):
    """Another browser holding a stolen copy of ``client``'s cookies."""
    thief = app.test_client()
    for name in names:
        cookie = client.get_cookie(name)
        if cookie is not None:
            thief.set_cookie(name, cookie.value)
    return thief


@pytest.fixture
def users(app):
    with app.app_context():
        alice = create_user("alice", "correct horse")
        create_user("root", "correct horse", role="admin")
        db.session.commit()
        return {"alice": alice.id}


def test_sign_out_ends_a_copied_session_cookie(app, users):
    alice = sign_in(app)
    thief = copy_of(app, alice, names=("session",))
    assert signed_in(thief)  # the copy works while alice is signed in
    assert AuthActions(alice).logout().status_code == 302
    assert thief.get("/chat/").status_code == 302  # ...and not once she has signed out
    assert not signed_in(alice)


def test_sign_out_ends_a_copied_remember_me_cookie(app, users):
    alice = sign_in(app, remember=True)
    assert alice.get_cookie(REMEMBER_COOKIE) is not None
    thief = copy_of(app, alice, names=(REMEMBER_COOKIE,))  # the remember-me cookie alone signs in
    assert signed_in(thief)
    AuthActions(alice).logout()
    assert not signed_in(copy_of(app, alice, names=(REMEMBER_COOKIE,)))
    assert not signed_in(thief)


def test_sign_out_ends_only_that_sign_in(app, users):
    laptop, phone = sign_in(app), sign_in(app)
    AuthActions(laptop).logout()
    assert not signed_in(laptop) and signed_in(phone)


def test_sign_out_everywhere_ends_every_browser_and_api_token(app, users):
    laptop, phone = sign_in(app, remember=True), sign_in(app)
    stolen = copy_of(app, phone)
    pair = app.test_client().post("/api/token/", json={"username": "alice", "password": "correct horse"}).get_json()
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {pair['access']}"}
    assert api.get("/v1/models", headers=bearer).status_code == 200

    response = laptop.post("/settings/sessions/end-all", data={"csrf_token": csrf_token(laptop, "/settings/sessions")})
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    for browser in (laptop, phone, stolen, copy_of(app, laptop)):
        assert not signed_in(browser)
    assert api.get("/v1/models", headers=bearer).status_code == 401
    assert api.post("/api/token/refresh/", json={"refresh": pair["refresh"]}).status_code == 401
    assert signed_in(sign_in(app))  # signing in again works


@pytest.mark.parametrize("action", ["disable", "reset_password"])
def test_an_admins_disable_or_password_reset_ends_every_sign_in(app, users, action):
    alice = sign_in(app, remember=True)
    stolen = copy_of(app, alice)
    with app.app_context():
        root = db.session.scalar(select(User).where(User.username == "root"))
        user = db.session.get(User, users["alice"])
        if action == "disable":
            service.set_disabled(root, user, True)
            db.session.commit()
            service.set_disabled(root, user, False)  # enabled again: the old sign-ins stay ended
        else:
            service.reset_password(root, user, "correct horse")  # even the same password
        db.session.commit()
    assert not signed_in(alice) and not signed_in(stolen)
    assert signed_in(sign_in(app))


def test_an_expired_sign_in_is_refused(app, users):
    alice = sign_in(app)
    with app.app_context():
        db.session.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert not signed_in(alice)


def test_the_database_keeps_only_a_hash_of_the_cookie_token(app, users):
    alice = sign_in(app)
    cookie = alice.get_cookie("session").value
    with app.app_context():
        record = db.session.scalar(select(UserSession))
        assert len(record.token_hash) == 64 and record.token_hash not in cookie


def test_the_loader_is_one_indexed_read_and_notes_last_seen_at_most_every_minute(app, users):
    app.config["SIGNED_IN_CACHE_SECONDS"] = 0  # its database read (the moment-long cache: test_signed_in.py)
    alice = sign_in(app)
    with app.app_context():
        record = db.session.scalar(select(UserSession))
        session_id, first_seen = record.id, record.last_seen_at
    with app.test_request_context("/"):
        statements = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731  (conn, cursor, statement, ...)
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            raw = raw_token_of(app, alice)
            assert sessions.load_user(raw, sessions.WEB).username == "alice"
            assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT")
            assert "token_hash" in statements[0]

            db.session.remove()
            with app.app_context():
                db.session.execute(update(UserSession).values(last_seen_at=first_seen - timedelta(minutes=2)))
                db.session.commit()
            statements.clear()
            user = sessions.load_user(raw, sessions.WEB)
            assert [s.lstrip().split()[0].upper() for s in statements] == ["SELECT"]  # the write waits
            assert user.current_session.last_seen_at >= first_seen
            sessions.write_touches()  # what the request's teardown does, once its own connection is back
            assert [s.lstrip().split()[0].upper() for s in statements] == ["SELECT", "UPDATE"]

            statements.clear()
            db.session.remove()
            sessions.load_user(raw, sessions.WEB)
            assert len(statements) == 1  # seen a moment ago: no write
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
    with app.app_context():
        assert db.session.get(UserSession, session_id).last_seen_at >= first_seen


def raw_token_of(app, client) -> str:
    """The sign-in token flask-login keeps in the signed session cookie."""
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.loads(client.get_cookie("session").value)["_user_id"]


def test_the_token_lookup_is_indexed(app):
    with app.app_context():
        indexes = {tuple(index.columns.keys()): index.unique for index in UserSession.__table__.indexes}
    assert indexes[("token_hash",)] is True


def test_noting_last_use_never_takes_a_second_connection(app, app_config, users):
    """With every pooled connection held by a request, a loader that wanted a second one would wait for the
    pool's timeout (a deadlock under load, as gevent's many requests at once showed on PostgreSQL)."""
    alice = sign_in(app)
    with app.app_context():
        db.session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
    one_connection = create_app(
        {**app_config, "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0, "pool_timeout": 2}}
    )
    browser = one_connection.test_client()
    browser.set_cookie("session", alice.get_cookie("session").value)
    assert browser.get("/chat/").status_code == 200
    with one_connection.app_context():
        assert utcnow() - db.session.scalar(select(UserSession.last_seen_at)) < timedelta(minutes=1)
        db.session.remove()
        db.engine.dispose()
