"""Who may reach what: every route of the app, generated from the URL map, for an anonymous visitor,
a user, another user, a disabled user and an admin. A new route without a rule here fails this test."""

from fnmatch import fnmatch

import pytest
from sqlalchemy import select

from tests.support.accounts import AuthActions
from tests.support.files import png
from tests.support.forms import csrf_token
from webapp import attachments, groups, sharing
from webapp.accounts import create_user
from webapp.accounts.api_keys import create_key
from webapp.admin import RQ_DASHBOARD_READ_ONLY
from webapp.extensions import db
from webapp.models import ApiKey, Conversation, Generation, User, UserSession

PUBLIC = [
    "root.welcome",
    "auth.login",
    "auth.signup",
    "ops.healthz",
    "ops.readyz",
    "static",
    "favicon_for_rq_dashboard",  # a redirect to static/icon.svg
    "api.docs",
    "api.openapi",
    "api.signup",
    "api.token_obtain",
    "api.token_refresh",
    "auth.sso_start",
    "auth.sso_callback",
]
SIGNED_IN = ["chat.*", "model_settings.*", "account.*", "auth.logout", "share.*"]
ADMIN = ["admin.*", "rq_dashboard.*", "ops.metrics"]
API_TOKEN = ["api.chat_completions", "api.supported_models", "api.usage", "v1.*"]
# URL arguments that name one user's own objects: anyone else gets 404, never a hint it exists.
OWNED_ARGUMENTS = {"conversation_id", "generation_id", "message_id", "key_id", "session_id", "link_id", "attachment_id"}
# Routes that sign the caller out: judged last, or not at all, so they do not end the visitor's session mid-test.
SIGNS_OUT = {"auth.logout", "account.end_all_sessions"}


def rule_class(endpoint: str) -> str | None:
    for name, patterns in [("public", PUBLIC), ("signed_in", SIGNED_IN), ("admin", ADMIN), ("api", API_TOKEN)]:
        if any(fnmatch(endpoint, pattern) for pattern in patterns):
            return name
    return None


@pytest.fixture
def world(app, client, run_jobs):
    """alice owns a conversation, a reply and an API key; mallory is another user; dan is disabled; root is admin."""
    from tests.support.chat import send

    AuthActions(client).signup("alice")
    send(client, "alice's secret plans")
    run_jobs()
    with app.app_context():
        alice = db.session.scalar(select(User).where(User.username == "alice"))
        for name, role in [("mallory", "user"), ("dan", "user"), ("root", "admin")]:
            create_user(name, "correct horse", role=role)
        key, _raw = create_key(alice, "laptop")
        team = groups.create_group(None, "Team")
        groups.add_member(None, team, alice)
        db.session.commit()
        conversation = db.session.scalar(select(Conversation))
        link = sharing.share(alice, conversation, include_system_prompt=False)
        db.session.commit()
        generation = db.session.scalar(select(Generation))
        [attachment] = attachments.attach(alice.id, [attachments.check(png(), "plans.png")], message=generation.message)
        db.session.commit()
        ensure_probe_job()
        return {
            "conversation_id": conversation.id,
            "attachment_id": attachment.id,
            "message_id": generation.message_id,
            "generation_id": generation.id,
            "key_id": db.session.scalar(select(ApiKey.id)),
            "user_id": alice.id,
            "invitation_id": 1,
            "name": "echo",
            "fmt": "md",
            "queue_name": "switchboard-test",
            "registry_name": "queued",
            "job_id": PROBE_JOB,
            "instance_number": 0,
            "per_page": 10,
            "order": "asc",
            "page": 1,
            "filename": "app.css",
            "model_id": "echo",
            "session_id": db.session.scalar(select(UserSession.id).where(UserSession.user_id == alice.id)),
            "group_id": team.id,
            "link_id": link.id,
            "token": link.token,
        }


PROBE_JOB = "authz-probe"


def ensure_probe_job():
    """A failed job, plus one waiting, for rq-dashboard to show, requeue, compact and delete
    (rq-dashboard answers 500 for job ids it cannot find or cannot requeue)."""
    from rq.job import JobStatus

    from webapp.queue import get_queue
    from workers.base import SimpleWorker

    queue = get_queue()
    job = queue.fetch_job(PROBE_JOB)
    if job is None or job.get_status() != JobStatus.FAILED:
        if job is not None:
            job.delete()
        queue.empty()
        queue.enqueue("tests.workers.jobs.fail", job_id=PROBE_JOB)
        SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
    if queue.count == 0:
        queue.enqueue("tests.workers.jobs.fail")


def routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def call(client, app, rule, method, values):
    url = rule.build({arg: values[arg] for arg in rule.arguments}, append_unknown=False)[1]
    if method == "GET":
        response = client.get(url)
        if response.status_code == 308:  # rq-dashboard's aliases of /admin/rq/: judge where they lead
            response.close()
            response = client.get(response.headers["Location"])
        response.close()  # static files are streamed from open files
        return response
    data, headers = {}, {}
    if rule.endpoint.startswith("rq_dashboard."):
        headers["Origin"] = "http://localhost"  # its actions need a same-origin POST (tests/admin/test_rq_dashboard.py)
    if not rule.endpoint.startswith(("api.", "v1.")):
        # A valid CSRF token, so what is judged is the authorization, not the missing token.
        signed_in = client.get("/chat/").status_code == 200
        data["csrf_token"] = csrf_token(client, "/chat/" if signed_in else "/auth/login")
    return client.post(url, data=data, headers=headers)


def rq_dashboard_action(rule) -> bool:
    return rule.endpoint.startswith("rq_dashboard.") and rule.endpoint.split(".", 1)[1] not in RQ_DASHBOARD_READ_ONLY


def signed_in_client(app, username):
    client = app.test_client()
    response = AuthActions(client).login(username, "correct horse")
    assert response.status_code == 302, username
    return client


def to_login(response) -> bool:
    return response.status_code == 401 or (
        response.status_code == 302 and "/auth/login" in response.headers.get("Location", "")
    )


def test_every_route_has_a_rule(app):
    missing = sorted({rule.endpoint for rule in app.url_map.iter_rules() if rule_class(rule.endpoint) is None})
    assert not missing, f"routes without an authorization rule: {missing}"


def test_authorization_matrix(app, client, world):
    anonymous = app.test_client()
    mallory = signed_in_client(app, "mallory")
    dan = signed_in_client(app, "dan")
    with app.app_context():
        db.session.scalar(select(User).where(User.username == "dan")).is_disabled = True
        db.session.commit()
    alice = client
    problems = []

    def check(who, rule, method, response, ok):
        server_error = response.status_code >= 500 and rule.endpoint != "ops.readyz"  # 503: no worker here
        if server_error or not ok(response):
            problems.append(
                f"{who} {method} {rule.rule} -> {response.status_code} {response.headers.get('Location', '')}"
            )

    admin_rules = []
    for rule, method in routes(app):
        kind = rule_class(rule.endpoint)
        owned = bool(OWNED_ARGUMENTS & set(rule.arguments))
        if kind == "admin":
            admin_rules.append((rule, method))
        if kind == "public":
            check(
                "anonymous",
                rule,
                method,
                call(anonymous, app, rule, method, world),
                lambda r: r.status_code not in (401, 403) and not to_login(r) or rule.endpoint.startswith("api.token"),
            )
            continue
        # Anonymous and disabled users are sent to sign in (pages) or refused (JSON), everywhere else.
        for who, visitor in [("anonymous", anonymous), ("disabled", dan)]:
            check(
                who,
                rule,
                method,
                call(visitor, app, rule, method, world),
                lambda r: to_login(r) if kind != "api" else r.status_code == 401,
            )
        if kind == "admin":
            check("user", rule, method, call(mallory, app, rule, method, world), lambda r: r.status_code == 403)
        elif kind == "api":
            # A browser session cookie alone never authorizes an API call.
            check("user-cookie", rule, method, call(alice, app, rule, method, world), lambda r: r.status_code == 401)
        elif kind == "signed_in":
            if owned:
                check(
                    "other user", rule, method, call(mallory, app, rule, method, world), lambda r: r.status_code == 404
                )
            elif rule.endpoint not in SIGNS_OUT:
                check(
                    "user",
                    rule,
                    method,
                    call(mallory, app, rule, method, world),
                    lambda r: r.status_code not in (401, 403) and not to_login(r),
                )

    root = signed_in_client(app, "root")
    for rule, method in admin_rules:
        if rule.endpoint in ("admin.user_status", "admin.user_role", "admin.user_password"):
            continue  # changes alice's account; covered by the admin tests
        with app.app_context():  # the previous action may have deleted, requeued or emptied it
            ensure_probe_job()
        if method == "GET" and rq_dashboard_action(rule):  # a queue action by GET is refused, even for admins
            check("admin", rule, method, call(root, app, rule, method, world), lambda r: r.status_code == 403)
            continue
        check(
            "admin",
            rule,
            method,
            call(root, app, rule, method, world),
            lambda r: r.status_code not in (401, 403) and not to_login(r),
        )

    assert not problems, "\n".join(problems)
    # The owner still sees her own things.
    assert alice.get(f"/chat/{world['conversation_id']}").status_code == 200


def test_every_signed_in_page_and_every_api_response_is_no_store(app, client, world):
    """Cache-Control: no-store on every route of the map, answered to a signed-in visitor (pages) and to
    any caller (API), whatever the status; only static files may be cached."""
    root = signed_in_client(app, "root")
    alice = client
    with app.app_context():
        access = tokens_for(app, "alice")
    bearer = {"Authorization": f"Bearer {access}"}
    anonymous = app.test_client()
    problems, judged = [], 0

    def check(who, method, rule, response):
        nonlocal judged
        judged += 1
        expected = "no-store"
        if rule.endpoint == "chat.attachment" and response.status_code == 200:
            # A file never changes under its id: its owner's browser may keep it, no shared cache may.
            expected = "private, max-age=86400"
        if response.headers.get("Cache-Control") != expected:
            problems.append(
                f"{who} {method} {rule.rule} -> {response.status_code} "
                f"Cache-Control={response.headers.get('Cache-Control')!r}"
            )

    for rule, method in routes(app):
        kind = rule_class(rule.endpoint)
        if rule.endpoint == "static" or rule.endpoint in SIGNS_OUT:
            continue
        if kind == "api" or rule.endpoint.startswith(("api.", "v1.")):
            url = rule.build({arg: world[arg] for arg in rule.arguments}, append_unknown=False)[1]
            for who, headers in (("bearer", bearer), ("anonymous", {})):
                response = anonymous.open(url, method=method, headers=headers, json={} if method == "POST" else None)
                response.close()
                check(f"api {who}", method, rule, response)
            continue
        visitor = root if kind == "admin" else alice
        if method == "POST" and kind == "signed_in" and OWNED_ARGUMENTS & set(rule.arguments):
            continue  # would delete alice's things (or end her session) before the GETs are judged
        if kind == "admin" and rule.endpoint in ("admin.user_status", "admin.user_role", "admin.user_password"):
            continue
        with app.app_context():
            ensure_probe_job()
        check("signed in", method, rule, call(visitor, app, rule, method, world))
    assert not problems, "\n".join(problems)
    assert judged > 60
    # A static file may be cached; a signed-out page needs no rule of its own.
    static = alice.get("/static/app.css")
    static.close()
    assert static.headers.get("Cache-Control") != "no-store"


def tokens_for(app, username: str) -> str:
    with app.test_client() as api:
        return api.post("/api/token/", json={"username": username, "password": "correct horse"}).get_json()["access"]
