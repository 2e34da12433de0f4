"""The database goes away: a clear 503 (HTML for pages, JSON for endpoints), never a traceback."""

import pytest

from tests.support.forms import csrf_token
from webapp import create_app


@pytest.fixture
def broken_app(instance_path, app_config, tmp_path):
    # A SQLite file in a folder that does not exist cannot be opened: every query fails.
    return create_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'gone' / 'nowhere.db'}"})


def test_pages_answer_503_html(broken_app):
    client = broken_app.test_client()
    token = csrf_token(client, "/auth/login")  # the sign-up page itself asks the database (the policy)
    response = client.post(
        "/auth/signup",
        data={"username": "zed", "password": "correct horse", "confirm": "correct horse", "csrf_token": token},
    )
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "database is unavailable" in body and "<html" in body
    assert "Traceback" not in body and "sqlite" not in body.lower()


def test_json_endpoints_answer_503_json(broken_app):
    client = broken_app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1:1"  # a signed-in browser whose user cannot be loaded now
    response = client.get("/chat/generations/1/status", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert "database is unavailable" in response.get_json()["error"]["message"]


def test_readyz_says_which_part_is_down(broken_app):
    response = broken_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"]["ok"] is False
