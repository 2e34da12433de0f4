"""Sign-up policy (open, approval, invite, closed), the first admin, the per-address throttle and the
password rule, through the sign-up page, POST /api/signup/, the admin's pages and the CLI."""

from __future__ import annotations

import re

from sqlalchemy import select

from supervisor import open_signup_warning
from tests.support.accounts import AuthActions
from tests.support.admin import get_user, make_user, post
from tests.support.forms import csrf_token
from webapp.extensions import db
from webapp.models import User

WEAK = ("12345678", "password1234", "qwertyuiop", "aaaaaaaaaaaa", "davedavedave", "switchboard1")
STRONG = "correct horse"


def api_signup(client, username, password=STRONG, **extra):
    return client.post("/api/signup/", json={"username": username, "password": password, **extra})


def api_token(client, username, password=STRONG):
    return client.post("/api/token/", json={"username": username, "password": password})


def admin_client(app, username="root"):
    make_user(app, username, role="admin")
    client = app.test_client()
    assert AuthActions(client).login(username).status_code == 302
    return client


def set_policy(admin, policy):
    response = post(admin, "/admin/signup/policy", {"policy": policy}, page="/admin/signup")
    assert response.status_code == 302, response.get_data(as_text=True)


def test_first_account_becomes_the_admin_and_the_next_one_does_not(app, client):
    app.config["SIGNUP_FIRST_ADMIN"] = True  # the default (tests/conftest.py turns it off for the other tests)
    assert api_signup(client, "first").status_code == 201
    assert api_signup(client, "second").status_code == 201
    assert get_user(app, "first").is_admin and not get_user(app, "second").is_admin
    # On a server whose admin came from the CLI, nobody who signs up becomes one.
    page = AuthActions(client).signup("third")
    assert page.status_code == 302 and not get_user(app, "third").is_admin


def test_weak_passwords_are_refused_on_every_path(app, client, runner):
    make_user(app, "someone")  # so sign-ups below are not the first admin's
    for password in WEAK:
        response = api_signup(client, "dave", password)
        assert response.status_code == 400 and "password" in response.get_json(), password
        page = AuthActions(client).signup("dave", password)
        assert page.status_code == 200 and "/auth/signup" in page.request.path, password
        result = runner.invoke(args=["create-admin", "dave", "--password", password])
        assert result.exit_code != 0 and "not accepted" in result.output, password
    admin = admin_client(app)
    created = post(admin, "/admin/users", {"username": "dave", "password": "12345678abc", "role": "user"})
    assert created.status_code == 400 and "less guessable" in created.get_data(as_text=True)
    dave_id = make_user(app, "dave")
    reset = post(admin, f"/admin/users/{dave_id}/password", {"password": "password1234", "confirm": "password1234"})
    assert reset.status_code == 400 and "less guessable" in reset.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "dave")).check_password(STRONG)
    # The username and the site are context: "davedavedave" is guessable for dave, "switchboard1" here.
    assert api_signup(client, "erin", STRONG).status_code == 201


def test_approval_policy(app, client):
    admin = admin_client(app)
    set_policy(admin, "approval")
    response = api_signup(client, "waiter")
    assert response.status_code == 201
    assert response.get_json()["status"] == "awaiting_approval"
    assert "approval" in response.get_json()["message"]
    refused = api_token(client, "waiter")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "awaiting_approval"
    page = AuthActions(client).signup("pagewaiter")
    assert page.status_code == 200 and "awaits an admin" in page.get_data(as_text=True)
    login = AuthActions(client).login("pagewaiter")
    assert login.status_code == 403 and "awaits an admin" in login.get_data(as_text=True)

    home = admin.get("/admin/").get_data(as_text=True)
    assert re.search(r'id="awaiting">2<', home) and "await approval" in home
    waiter = get_user(app, "waiter")
    assert waiter.is_disabled and waiter.awaiting_approval
    assert post(admin, f"/admin/users/{waiter.id}/approval", {"decision": "approve"}).status_code == 302
    assert api_token(client, "waiter").status_code == 200
    other = get_user(app, "pagewaiter")
    assert post(admin, f"/admin/users/{other.id}/approval", {"decision": "refuse"}).status_code == 302
    with app.app_context():
        assert db.session.get(User, other.id) is None
    assert 'id="awaiting"' not in admin.get("/admin/").get_data(as_text=True)


def test_invitation_policy(app, client):
    admin = admin_client(app)
    set_policy(admin, "invite")
    refused = api_signup(client, "stranger")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "invitation_required"
    assert client.get("/auth/signup").status_code == 403

    page = post(admin, "/admin/signup/invitations", {"email": "Guest@Example.org", "days": "7"}, page="/admin/signup")
    link = re.search(r'value="([^"]+)" id="new-invitation-link"', page.get_data(as_text=True))
    assert page.status_code == 200 and link
    token = link.group(1).split("invite=", 1)[1]

    form = client.get(f"/auth/signup?invite={token}")
    assert form.status_code == 200 and "invited" in form.get_data(as_text=True)
    wrong = api_signup(client, "guest", invitation=token, email="other@example.org")
    assert wrong.status_code == 403 and wrong.get_json()["error"]["code"] == "invitation_email_mismatch"
    csrf = csrf_token(client, f"/auth/signup?invite={token}")
    data = {"username": "guest", "password": STRONG, "confirm": STRONG, "invitation": token, "csrf_token": csrf}
    mismatch = client.post("/auth/signup", data={**data, "email": "other@example.org"})
    assert mismatch.status_code == 400 and "another email" in mismatch.get_data(as_text=True)
    accepted = client.post("/auth/signup", data={**data, "email": "guest@example.org"})
    assert accepted.status_code == 302 and not get_user(app, "guest").awaiting_approval
    reused = api_signup(app.test_client(), "guest2", invitation=token, email="guest@example.org")
    assert reused.status_code == 403 and reused.get_json()["error"]["code"] == "invitation_invalid"


def test_closed_policy_leaves_account_creation_to_admins(app, client):
    admin = admin_client(app)
    set_policy(admin, "closed")
    refused = api_signup(client, "stranger")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "signup_closed"
    page = client.get("/auth/signup")
    assert page.status_code == 403 and "closed" in page.get_data(as_text=True)
    created = post(admin, "/admin/users", {"username": "member", "password": STRONG, "role": "user"})
    assert created.status_code == 302
    assert api_token(client, "member").status_code == 200


def test_environment_sets_the_starting_policy_and_the_throttle_counts_page_and_api_together(app, client):
    # As SIGNUP_POLICY=closed and SIGNUP_MAX_PER_HOUR=3 in .env would (SIGNUP_FIRST_ADMIN: the default).
    app.config.update(SIGNUP_POLICY="closed", SIGNUP_MAX_PER_HOUR=3, SIGNUP_FIRST_ADMIN=True)
    # With no admin yet, the first account may always be made: it becomes the admin.
    assert api_signup(client, "founder").status_code == 201
    assert get_user(app, "founder").is_admin
    assert api_signup(client, "stranger").get_json()["error"]["code"] == "signup_closed"
    founder = app.test_client()
    AuthActions(founder).login("founder")
    set_policy(founder, "open")  # the admin's choice wins over SIGNUP_POLICY
    assert api_signup(client, "second").status_code == 201
    assert AuthActions(app.test_client()).signup("third").status_code == 302
    throttled = api_signup(client, "fourth")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 3000
    page = AuthActions(app.test_client()).signup("fifth")
    assert page.status_code == 429 and "Too many accounts" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username.in_(["fourth", "fifth"]))) is None


def test_make_run_warns_when_open_signup_is_reachable_from_elsewhere():
    assert open_signup_warning("127.0.0.1", "open") is None
    assert open_signup_warning("localhost", "open") is None
    assert open_signup_warning("::1", "open") is None
    assert "sign-up is open" in open_signup_warning("0.0.0.0", "open")
    assert "sign-up is open" in open_signup_warning("example.org", "open")
    assert open_signup_warning("0.0.0.0", "approval") is None


def test_without_the_first_admin_rule_admins_come_only_from_the_cli(app, client):
    app.config["SIGNUP_POLICY"] = "closed"
    assert api_signup(client, "grabber").get_json()["error"]["code"] == "signup_closed"
    app.config["SIGNUP_POLICY"] = "open"
    assert api_signup(client, "plain").status_code == 201 and not get_user(app, "plain").is_admin
