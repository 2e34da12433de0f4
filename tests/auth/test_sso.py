"""Single sign-on against a real OpenID Connect provider (Node's oidc-provider on 127.0.0.1), through Authlib."""

import pytest
from sqlalchemy import select

from tests.support.accounts import AuthActions
from tests.support.forms import csrf_token
from tests.support.oidc_provider import callback_path
from webapp.accounts import create_user
from webapp.extensions import db
from webapp.models import AuditEvent, Group, GroupMember, User, UserSession


@pytest.fixture
def app_config(app_config, oidc_provider):
    return {**app_config, **oidc_provider.app_config(OIDC_ADMIN_GROUPS="switchboard-admins")}


def start(client) -> str:
    """Begin a sign-in at the app; the provider's authorization URL it redirects to."""
    response = client.get("/auth/sso/")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def sso_sign_in(client, provider, login):
    return client.get(callback_path(provider.authorize(start(client), login)))


def user_named(app, username) -> User | None:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        if user is not None:
            db.session.expunge(user)
        return user


def test_the_flow_is_code_with_pkce_state_and_nonce(client, oidc_provider):
    location = start(client)
    assert location.startswith(oidc_provider.issuer + "/auth?")
    for parameter in ("response_type=code", "code_challenge=", "code_challenge_method=S256", "state=", "nonce="):
        assert parameter in location
    assert "scope=openid+email+profile+groups" in location


def test_only_the_latest_started_sign_in_is_kept_in_the_cookie(app, client, oidc_provider):
    oidc_provider.set_account("kim", preferred_username="kim")
    first = start(client)
    for _ in range(20):
        latest = start(client)
    with client.session_transaction() as session:
        assert len([key for key in session if key.startswith("_state_")]) == 1
    assert client.get(callback_path(oidc_provider.authorize(first, "kim"))).status_code == 400
    assert client.get(callback_path(oidc_provider.authorize(latest, "kim"))).status_code == 302


def test_first_sign_in_creates_the_account_and_an_ordinary_session(app, client, oidc_provider):
    oidc_provider.set_account(
        "alice-idp", preferred_username="alice", email="alice@example.com", email_verified=True, groups=[]
    )
    response = sso_sign_in(client, oidc_provider, "alice-idp")
    assert response.status_code == 302 and response.headers["Location"].endswith("/chat/")
    assert client.get("/chat/").status_code == 200
    alice = user_named(app, "alice")
    assert alice is not None and alice.sso_subject == f"{oidc_provider.issuer} alice-idp" and alice.role == "user"
    with app.app_context():
        records = db.session.scalars(select(UserSession).where(UserSession.user_id == alice.id)).all()
        assert [(r.kind, r.revoked_at) for r in records] == [("web", None)]
    assert "alice" in client.get("/settings/sessions").get_data(as_text=True)

    # The second sign-in finds the same account; sign-out everywhere ends both sign-ins.
    other_browser = app.test_client()
    sso_sign_in(other_browser, oidc_provider, "alice-idp")
    assert user_named(app, "alice").id == alice.id
    with app.app_context():
        assert db.session.query(User).count() == 1
    client.post("/settings/sessions/end-all", data={"csrf_token": csrf_token(client, "/settings/sessions")})
    assert other_browser.get("/chat/").status_code == 302


def test_the_username_falls_back_to_the_email_and_is_made_unique(app, client, oidc_provider):
    with app.app_context():
        create_user("bob", "correct horse")
        db.session.commit()
    oidc_provider.set_account("bob-idp", email="bob@example.com", email_verified=True)
    sso_sign_in(client, oidc_provider, "bob-idp")
    local, created = user_named(app, "bob"), user_named(app, "bob-2")
    assert local.sso_subject is None  # linking is off: the local account is left alone
    assert created is not None and created.sso_subject.endswith(" bob-idp")


def test_a_local_account_is_linked_only_when_allowed_and_the_email_verified(app, client, oidc_provider):
    with app.app_context():
        carol_id = create_user("carol", "correct horse").id
        from webapp import sso

        sso.set_allow_linking(None, True)
        db.session.commit()
    oidc_provider.set_account("carol-unverified", preferred_username="carol", email_verified=False)
    sso_sign_in(app.test_client(), oidc_provider, "carol-unverified")
    assert user_named(app, "carol").sso_subject is None
    assert user_named(app, "carol-2") is not None

    oidc_provider.set_account("carol-idp", preferred_username="carol", email="carol@example.com", email_verified=True)
    sso_sign_in(client, oidc_provider, "carol-idp")
    carol = user_named(app, "carol")
    assert carol.id == carol_id and carol.sso_subject.endswith(" carol-idp")
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.action == "sso.link")) == "sso.link"


def test_the_admin_group_grants_admin_and_leaving_it_removes_it(app, oidc_provider):
    with app.app_context():
        create_user("root", "correct horse", role="admin")
        db.session.commit()
    oidc_provider.set_account("dana", preferred_username="dana", groups=["staff", "switchboard-admins"])
    sso_sign_in(app.test_client(), oidc_provider, "dana")
    assert user_named(app, "dana").role == "admin"

    oidc_provider.set_account("dana", preferred_username="dana", groups=["staff"])
    sso_sign_in(app.test_client(), oidc_provider, "dana")
    assert user_named(app, "dana").role == "user"
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("sso.admin%")).order_by(AuditEvent.id)
        ).all()
    assert actions == ["sso.admin_granted", "sso.admin_removed"]


def test_the_last_active_admin_keeps_admin_when_leaving_the_group(app, oidc_provider):
    oidc_provider.set_account("erin", preferred_username="erin", groups=["switchboard-admins"])
    sso_sign_in(app.test_client(), oidc_provider, "erin")
    oidc_provider.set_account("erin", preferred_username="erin", groups=[])
    sso_sign_in(app.test_client(), oidc_provider, "erin")
    assert user_named(app, "erin").role == "admin"


def test_a_wrong_state_is_refused(app, client, oidc_provider):
    oidc_provider.set_account("frank", preferred_username="frank")
    location = callback_path(oidc_provider.authorize(start(client), "frank"))
    path, _, query = location.partition("?")
    tampered = "&".join(
        "state=not-the-state-we-sent" if part.startswith("state=") else part for part in query.split("&")
    )
    response = client.get(f"{path}?{tampered}")
    assert response.status_code == 400
    assert "could not be matched to this browser" in response.get_data(as_text=True)
    assert user_named(app, "frank") is None
    assert client.get("/chat/").status_code == 302


def test_a_replayed_code_is_refused(app, client, oidc_provider):
    oidc_provider.set_account("grace", preferred_username="grace")
    first = callback_path(oidc_provider.authorize(start(client), "grace"))
    assert client.get(first).status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/chat/")})

    # The same code again, with the state of a new sign-in begun in this browser.
    second = callback_path(oidc_provider.authorize(start(client), "grace"))
    old_code = next(p for p in first.split("?", 1)[1].split("&") if p.startswith("code="))
    replay = "&".join(old_code if p.startswith("code=") else p for p in second.split("?", 1)[1].split("&"))
    response = client.get("/auth/sso/callback?" + replay)
    assert response.status_code == 400
    assert "refused the sign-in code" in response.get_data(as_text=True)
    assert client.get("/chat/").status_code == 302


def test_a_token_for_another_audience_is_refused(app, client, oidc_provider):
    oidc_provider.set_account("heidi", preferred_username="heidi")
    oidc_provider.issue_tokens_for_audience("another-app")
    response = sso_sign_in(client, oidc_provider, "heidi")
    assert response.status_code == 400
    assert "ID token is not valid (Invalid claim: &#39;aud&#39;)" in response.get_data(as_text=True)
    assert user_named(app, "heidi") is None


def test_a_disabled_user_cannot_sign_in(app, client, oidc_provider):
    oidc_provider.set_account("ivan", preferred_username="ivan")
    sso_sign_in(app.test_client(), oidc_provider, "ivan")
    with app.app_context():
        db.session.scalar(select(User).where(User.username == "ivan")).is_disabled = True
        db.session.commit()
    response = sso_sign_in(client, oidc_provider, "ivan")
    assert response.status_code == 403
    assert "This account is disabled" in response.get_data(as_text=True)
    assert client.get("/chat/").status_code == 302


@pytest.fixture
def sso_only(app):
    app.config["OIDC_ONLY"] = True
    with app.app_context():
        create_user("keeper", "correct horse").break_glass = True
        create_user("walter", "correct horse")
        db.session.commit()


def test_oidc_only_hides_the_password_form_and_break_glass_still_works(app, client, sso_only):
    page = client.get("/auth/login").get_data(as_text=True)
    assert "Sign in with single sign-on" in page and 'name="password"' not in page
    assert client.get("/auth/signup").status_code == 302

    token = csrf_token(client, "/auth/login?local=1")
    response = client.post(
        "/auth/login?local=1", data={"username": "walter", "password": "correct horse", "csrf_token": token}
    )
    assert response.status_code == 403 and "Password sign-in is turned off" in response.get_data(as_text=True)
    assert client.get("/chat/").status_code == 302

    response = client.post(
        "/auth/login?local=1", data={"username": "keeper", "password": "correct horse", "csrf_token": token}
    )
    assert response.status_code == 302 and client.get("/chat/").status_code == 200

    api = app.test_client()
    assert api.post("/api/token/", json={"username": "walter", "password": "correct horse"}).status_code == 403
    assert api.post("/api/token/", json={"username": "keeper", "password": "correct horse"}).status_code == 200
    assert api.post("/api/signup/", json={"username": "newbie", "password": "correct horse"}).status_code == 403


def test_the_admin_home_shows_sso_and_an_admin_marks_break_glass(app, oidc_provider):
    with app.app_context():
        create_user("root", "correct horse", role="admin")
        walter_id = create_user("walter", "correct horse").id
        db.session.commit()
    admin = app.test_client()
    assert AuthActions(admin).login("root", "correct horse").status_code == 302
    page = admin.get("/admin/").get_data(as_text=True)
    assert f"Set up with <code>{oidc_provider.issuer}</code>" in page
    assert "Discovery document last read 20" in page and " UTC." in page

    token = csrf_token(admin, f"/admin/users/{walter_id}")
    response = admin.post(f"/admin/users/{walter_id}/break-glass", data={"break_glass": "1", "csrf_token": token})
    assert response.status_code == 302
    assert user_named(app, "walter").break_glass is True
    assert (
        admin.post(f"/admin/users/{walter_id}/break-glass", data={"break_glass": "x", "csrf_token": token}).status_code
        == 400
    )
    response = admin.post("/admin/team-settings", data={"sso_allow_linking": "y", "csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        from webapp import sso

        assert sso.linking_allowed() is True
        actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"user.break_glass", "sso.linking"} <= actions


def test_without_sso_settings_its_pages_are_404_and_the_button_is_gone(app, client):
    app.config["OIDC_ISSUER"] = ""
    assert client.get("/auth/sso/").status_code == 404
    assert "Sign in with single sign-on" not in client.get("/auth/login").get_data(as_text=True)


def group_names(app, username):
    with app.app_context():
        return sorted(
            db.session.scalars(
                select(Group.name)
                .join(GroupMember)
                .join(User, User.id == GroupMember.user_id)
                .where(User.username == username)
            )
        )


def test_groups_follow_the_identity_provider_at_every_sign_in(app, oidc_provider):
    with app.app_context():
        db.session.add(Group(name="research", models=["echo"]))  # exists already: joined, not made again
        db.session.commit()
    oidc_provider.set_account("judy", preferred_username="judy", groups=["eng", "research"])
    sso_sign_in(app.test_client(), oidc_provider, "judy")
    assert group_names(app, "judy") == ["eng", "research"]
    with app.app_context():
        judy = db.session.scalar(select(User).where(User.username == "judy"))
        judy.primary_group_id = db.session.scalar(select(Group.id).where(Group.name == "eng"))
        db.session.commit()

    oidc_provider.set_account("judy", preferred_username="judy", groups=["research", "sales"])
    sso_sign_in(app.test_client(), oidc_provider, "judy")
    assert group_names(app, "judy") == ["research", "sales"]
    with app.app_context():
        assert sorted(db.session.scalars(select(Group.name))) == ["eng", "research", "sales"]
        assert db.session.scalar(select(Group).where(Group.name == "research")).models == ["echo"]
        assert db.session.scalar(select(User).where(User.username == "judy")).primary_group_id is None  # left "eng"


def test_an_unreachable_provider_is_a_clear_message_not_an_error(app, client):
    from tests.support.ports import free_port

    app.config["OIDC_ISSUER"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with app.app_context():
        from webapp import sso

        sso.init_app(app)
        create_user("root", "correct horse", role="admin")
        db.session.commit()
    response = client.get("/auth/sso/")
    assert response.status_code == 503
    assert "The identity provider could not be reached" in response.get_data(as_text=True)
    admin = app.test_client()
    AuthActions(admin).login("root", "correct horse")
    page = admin.get("/admin/").get_data(as_text=True)
    assert "The discovery document could not be read: ConnectionError." in page


def test_claims_only_at_the_userinfo_endpoint_count_too(app, oidc_provider):
    oidc_provider.set_account("lee", preferred_username="lee", email="lee@example.com", groups=["ops"])
    oidc_provider.claims_from_userinfo_only("groups", "preferred_username")
    sso_sign_in(app.test_client(), oidc_provider, "lee")
    assert group_names(app, "lee") == ["ops"]
