from sqlalchemy import func, select

from tests.support.forms import csrf_token
from webapp.extensions import db
from webapp.models import User


def count_users(app):
    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


def test_signup_logs_in_and_hashes_password(client, auth, app):
    response = auth.signup("alice", "correct horse")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/chat/")
    assert client.get("/chat/").status_code == 200
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "alice"))
        assert user.password_hash != "correct horse"
        assert user.password_hash.startswith("scrypt:")
        assert user.check_password("correct horse")


def test_duplicate_username_is_refused_case_insensitively(client, auth, app):
    auth.signup("alice")
    auth.logout()
    response = auth.signup("ALICE")
    assert response.status_code == 200
    assert "That username is taken." in response.get_data(as_text=True)
    assert count_users(app) == 1


def test_signup_validation_messages(client, auth, app):
    response = auth.signup("bob", "short", confirm="short")
    assert "Use at least 10 characters." in response.get_data(as_text=True)
    response = auth.signup("bob", "long enough pw", confirm="different pw")
    assert "The passwords do not match." in response.get_data(as_text=True)
    assert count_users(app) == 0


def test_wrong_password_is_a_clear_error(client, auth):
    auth.signup("alice")
    auth.logout()
    response = auth.login("alice", "wrong password")
    assert response.status_code == 200
    assert "Wrong username or password." in response.get_data(as_text=True)
    assert client.get("/chat/").status_code == 302


def test_missing_csrf_token_is_refused_and_changes_nothing(client, app):
    response = client.post("/auth/signup", data={"username": "mallory", "password": "x" * 12, "confirm": "x" * 12})
    assert response.status_code == 400
    assert "without a valid CSRF token" in response.get_data(as_text=True)
    assert count_users(app) == 0


def test_logout_requires_post_with_csrf(client, auth):
    auth.signup("alice")
    assert client.get("/auth/logout").status_code == 405
    assert client.post("/auth/logout").status_code == 400
    assert client.get("/chat/").status_code == 200
    auth.logout()
    assert client.get("/chat/").status_code == 302


def test_next_redirects_only_to_local_paths(client, auth):
    auth.signup("alice")
    auth.logout()
    for target, expected in [
        ("/chat/?x=1", "/chat/?x=1"),
        ("https://evil.example/", "/chat/"),
        ("//evil.example/", "/chat/"),
        ("/\\evil.example", "/chat/"),
        ("javascript:alert(1)", "/chat/"),
    ]:
        token = csrf_token(client, "/auth/login")
        response = client.post(
            "/auth/login",
            query_string={"next": target},
            data={"username": "alice", "password": "correct horse", "csrf_token": token},
        )
        assert response.status_code == 302
        assert response.headers["Location"] == expected, target
        auth.logout()


def test_anonymous_is_sent_to_login_with_next(client):
    response = client.get("/chat/")
    assert response.status_code == 302
    assert "/auth/login?next=/chat/" in response.headers["Location"]


def test_session_cookie_flags(client, auth):
    response = auth.signup("alice")
    cookie = response.headers.get("Set-Cookie")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_disabled_user_loses_session_at_once(client, auth, app):
    auth.signup("alice")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "alice"))
        user.is_disabled = True
        db.session.commit()
    assert client.get("/chat/").status_code == 302
    assert "Wrong username or password." in auth.login("alice").get_data(as_text=True)


def test_sign_in_and_sign_up_pages_are_not_cached(client):
    for path in ("/auth/login", "/auth/signup"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path
