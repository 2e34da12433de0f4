"""Error handlers that cannot fail: a session left needing a rollback, the database down, Redis down."""

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from webapp import create_app
from webapp.accounts import create_user
from webapp.extensions import db


@pytest.fixture
def broken_session_routes(app):
    """Routes that leave the database session needing a rollback, then fail (added before any request)."""

    def break_session():
        # Two users with one name: the flush fails and nobody rolls back.
        create_user("twin", "correct horse")
        create_user("twin", "correct horse")
        try:
            db.session.flush()
        except IntegrityError:
            pass
        raise RuntimeError("a bug after a failed flush")

    def locked_for_good():
        raise OperationalError("UPDATE generations ...", {}, sqlite3.OperationalError("database is locked"))

    app.add_url_rule("/test/broken-session", "broken_session", break_session)
    app.add_url_rule("/test/locked", "locked", locked_for_good)
    return app


def test_error_page_renders_after_a_failed_flush(broken_session_routes, client, auth):
    auth.signup("alice")
    response = client.get("/test/broken-session", headers={"Accept": "text/html"})
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    # The whole page, top bar and signed-in user included: the handler rolled back before rendering.
    assert "Something went wrong on our side" in page and "alice" in page and 'class="topbar"' in page
    assert "Traceback" not in page and "IntegrityError" not in page
    # And the next request on the same app is fine.
    assert client.get("/chat/").status_code == 200


def test_json_error_after_a_failed_flush(broken_session_routes, client, auth):
    auth.signup("alice")
    response = client.get("/test/broken-session", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert response.get_json()["error"]["message"].startswith("Something went wrong")


def test_a_lock_that_outlasts_the_retries_is_a_plain_503(broken_session_routes, client, auth):
    auth.signup("alice")
    page = client.get("/test/locked", headers={"Accept": "text/html"})
    assert page.status_code == 503
    text = page.get_data(as_text=True)
    assert "Nothing was lost" in text and "locked" not in text.lower() and "sqlite" not in text.lower()
    data = client.get("/test/locked", headers={"Accept": "application/json"}).get_json()
    assert "locked" not in data["error"]["message"].lower()


@pytest.fixture
def database_down(instance_path, app_config, tmp_path):
    # A SQLite file in a folder that does not exist cannot be opened: every query fails.
    return create_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'gone' / 'nowhere.db'}"})


def test_signed_in_page_while_the_database_is_down_is_a_plain_503(database_down):
    client = database_down.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1:1"  # a signed-in browser whose user cannot be loaded now
    for path, status, says in (
        ("/chat/", 503, "database is unavailable"),
        ("/admin/", 503, "database is unavailable"),
        ("/no/such/page", 404, "Not Found"),
    ):
        response = client.get(path, headers={"Accept": "text/html"})
        assert response.status_code == status, path
        body = response.get_data(as_text=True)
        assert "<html" in body and says in body, body  # drawn plain: the top bar's user cannot be loaded
        assert "Traceback" not in body and "sqlite" not in body.lower()


def test_api_errors_while_the_database_is_down_are_json(database_down):
    client = database_down.test_client()
    response = client.post("/api/token/", json={"username": "a", "password": "b"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    response = client.get("/v1/models", headers={"Authorization": "Bearer sb-nothing"})
    assert response.status_code == 503 and response.is_json


def test_error_pages_while_redis_is_down(app, client, auth, tmp_path):
    auth.signup("alice")
    app.config["REDIS_URL"] = f"unix://{tmp_path / 'nothing-listens-here.sock'}"
    app.extensions.pop("switchboard_redis", None)
    response = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert response.status_code == 404 and "alice" in response.get_data(as_text=True)
    response = client.get("/api/no/such/thing")
    assert response.status_code == 404 and response.is_json
    response = client.get("/chat/generations/999/status")
    assert response.status_code == 404 and response.is_json
    assert client.get("/chat/").status_code == 200  # reading pages keeps working


def test_json_routes_are_marked_not_guessed_from_their_names(app, client):
    """A page form whose endpoint ends in "_status" is a page; the reply endpoints scripts call are JSON."""
    form = client.post("/admin/users/1/status", data={"disabled": "1"})
    assert form.status_code in (302, 400) and not form.is_json
    for path in ("/chat/generations/1/status", "/chat/generations/1/events"):
        response = client.get(path)
        assert response.status_code == 401 and response.is_json, path
        assert response.get_json()["error"]["message"] == "Sign in first."
