"""The sessions page: every live sign-in of one's own (browser and API), "this device", ending one, and
sign out everywhere; POST + CSRF only, and nobody else's sessions."""

import re

from sqlalchemy import select

from tests.support.accounts import sign_in, signed_in
from tests.support.forms import csrf_token
from webapp.accounts import create_user
from webapp.extensions import db
from webapp.models import User, UserSession


def make_users(app, *names):
    with app.app_context():
        for name in names:
            create_user(name, "correct horse")
        db.session.commit()


def session_ids(app, username):
    with app.app_context():
        return list(
            db.session.scalars(
                select(UserSession.id).join(User).where(User.username == username).order_by(UserSession.id)
            )
        )


def test_the_page_lists_live_sign_ins_with_this_device_marked(app):
    make_users(app, "alice", "mallory")
    laptop = app.test_client()
    token = csrf_token(laptop, "/auth/login")
    laptop.post(
        "/auth/login",
        data={"username": "alice", "password": "correct horse", "csrf_token": token},
        headers={"User-Agent": "LaptopBrowser/1.0"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    sign_in(app)  # a second browser
    app.test_client().post(
        "/api/token/", json={"username": "alice", "password": "correct horse"}, headers={"User-Agent": "script/2.0"}
    )
    sign_in(app, "mallory")
    ended = sign_in(app)
    ended.post("/auth/logout", data={"csrf_token": csrf_token(ended, "/chat/")})

    response = laptop.get("/settings/sessions")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert page.count(">this device<") == 1 and "LaptopBrowser/1.0" in page and "198.51.100.7" in page
    assert "API sign-in" in page and "script/2.0" in page
    items = re.findall(r'action="/settings/sessions/(\d+)/end"', page)
    assert sorted(map(int, items)) == session_ids(app, "alice")[:3]  # the signed-out one is gone; no mallory
    assert "Signed in" in page and "last seen" in page


def test_ending_another_session_signs_that_browser_out(app):
    make_users(app, "alice")
    laptop, phone = sign_in(app), sign_in(app)
    phone_session = session_ids(app, "alice")[1]
    response = laptop.post(
        f"/settings/sessions/{phone_session}/end", data={"csrf_token": csrf_token(laptop, "/settings/sessions")}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/settings/sessions")
    assert not signed_in(phone) and signed_in(laptop)
    assert f"/settings/sessions/{phone_session}/end" not in laptop.get("/settings/sessions").get_data(as_text=True)


def test_ending_this_device_signs_out_here(app):
    make_users(app, "alice")
    laptop = sign_in(app, remember=True)
    this = session_ids(app, "alice")[0]
    response = laptop.post(
        f"/settings/sessions/{this}/end", data={"csrf_token": csrf_token(laptop, "/settings/sessions")}
    )
    assert "/auth/login" in response.headers["Location"] and not signed_in(laptop)


def test_ending_an_api_sign_in_revokes_its_tokens(app):
    make_users(app, "alice")
    laptop = sign_in(app)
    pair = app.test_client().post("/api/token/", json={"username": "alice", "password": "correct horse"}).get_json()
    api_session = session_ids(app, "alice")[1]
    laptop.post(f"/settings/sessions/{api_session}/end", data={"csrf_token": csrf_token(laptop, "/settings/sessions")})
    api = app.test_client()
    assert api.get("/v1/models", headers={"Authorization": f"Bearer {pair['access']}"}).status_code == 401
    assert api.post("/api/token/refresh/", json={"refresh": pair["refresh"]}).status_code == 401


def test_no_one_ends_someone_elses_session_and_csrf_is_required(app):
    make_users(app, "alice", "mallory")
    alice, mallory = sign_in(app), sign_in(app, "mallory")
    alice_session = session_ids(app, "alice")[0]
    response = mallory.post(
        f"/settings/sessions/{alice_session}/end", data={"csrf_token": csrf_token(mallory, "/settings/sessions")}
    )
    assert response.status_code == 404
    assert (
        mallory.post(
            "/settings/sessions/999999/end", data={"csrf_token": csrf_token(mallory, "/settings/sessions")}
        ).status_code
        == 404
    )
    assert alice.post(f"/settings/sessions/{alice_session}/end").status_code == 400  # no CSRF token
    assert alice.post("/settings/sessions/end-all").status_code == 400
    assert alice.get(f"/settings/sessions/{alice_session}/end").status_code == 405  # never by GET
    assert signed_in(alice) and signed_in(mallory)
