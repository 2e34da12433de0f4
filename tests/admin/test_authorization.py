"""Every admin and rq-dashboard route, for anonymous, plain user, disabled user and admin."""

import pytest
from sqlalchemy import select

from tests.support.admin import make_user
from tests.support.forms import csrf_token
from webapp.admin import RQ_DASHBOARD_READ_ONLY
from webapp.extensions import db
from webapp.models import User
from webapp.queue import get_queue

SAMPLE_VALUES = {
    "name": "echo",
    "user_id": 1,
    "group_id": 1,
    "invitation_id": 1,
    "instance_number": 0,
    "queue_name": "switchboard-test",
    "registry_name": "queued",
    "per_page": "10",
    "order": "asc",
    "page": "1",
    "filename": "js/jquery-3.5.1.min.js",
}


def protected_routes(app, job_id):
    """(method, path, endpoint) for every rule of the admin blueprint and rq-dashboard."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(("admin.", "rq_dashboard.")):
            continue
        values = {arg: SAMPLE_VALUES.get(arg, job_id) for arg in rule.arguments if arg not in (rule.defaults or {})}
        _, path = rule.build(values, append_unknown=False)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path, rule.endpoint))
    return sorted(routes, key=lambda route: LAST.index(route[2]) + 1 if route[2] in LAST else 0)


# Run the actions that remove the sample job last, so every other route still finds it.
LAST = ("rq_dashboard.compact_queue", "rq_dashboard.delete_job_view", "rq_dashboard.empty_queue")


def request(client, method, path, token):
    if method == "GET":
        response = client.get(path)
        if response.status_code == 308:  # werkzeug's canonical-URL redirect (e.g. /admin/rq/0/ -> /admin/rq/)
            response.close()
            response = client.get(response.headers["Location"])
        return response
    # rq-dashboard's actions need a same-origin POST (tests/admin/test_rq_dashboard.py): what is judged here
    # is who may, so the request comes from our own page.
    return client.open(path, method=method, data={"csrf_token": token}, headers={"Origin": "http://localhost"})


def refused_even_to_admins(method, endpoint) -> bool:
    """A queue action by GET (rq-dashboard's requeue_all accepts one) is refused to everyone."""
    return (
        method == "GET"
        and endpoint.startswith("rq_dashboard.")
        and endpoint.split(".", 1)[1] not in RQ_DASHBOARD_READ_ONLY
    )


def sent_to_login(response):
    if response.status_code == 401:
        return True
    return response.status_code == 302 and "/auth/login" in response.headers["Location"]


@pytest.mark.parametrize("who", ["anonymous", "user", "disabled", "admin"])
def test_authorization_matrix(who, app, client, auth, run_jobs):
    make_user(app, "root", role="admin")
    make_user(app, "bob")
    make_user(app, "mallory", role="admin")  # disabled below: a disabled admin is nobody
    with app.app_context():
        # A failed job (for the job and requeue pages) and a queued one (so the queue is not empty).
        job_id = get_queue().enqueue("builtins.int", "not a number").id
        run_jobs()
        get_queue().enqueue("workers.admin.check_provider_connection", "echo")
    if who == "user":
        auth.login("bob")
    elif who == "admin":
        auth.login("root")
    elif who == "disabled":
        auth.login("mallory")
        with app.app_context():
            db.session.scalar(select(User).where(User.username == "mallory")).is_disabled = True
            db.session.commit()
    token = csrf_token(client, "/auth/login" if who in ("anonymous", "disabled") else "/chat/")

    routes = protected_routes(app, job_id)
    endpoints = {endpoint for _, _, endpoint in routes}
    assert sum(e.startswith("admin.") for e in endpoints) >= 15
    assert sum(e.startswith("rq_dashboard.") for e in endpoints) >= 10
    assert any("/admin/rq/0/data/" in path for _, path, _ in routes)

    problems = []
    for method, path, endpoint in routes:
        response = request(client, method, path, token)
        response.get_data()
        response.close()  # static files are streamed from open files
        status = response.status_code
        if who in ("anonymous", "disabled"):
            ok = sent_to_login(response)
        elif who == "user":
            ok = status == 403
        elif refused_even_to_admins(method, endpoint):
            ok = status == 403
        else:
            ok = status not in (401, 403, 500) and not sent_to_login(response)
        if not ok:
            problems.append(f"{who} {method} {path} ({endpoint}) -> {status}")
    assert not problems, "\n".join(problems)


def test_rq_dashboard_json_is_refused_to_a_plain_user(app, client, auth):
    make_user(app, "bob")
    auth.login("bob")
    for path in ("/admin/rq/0/data/queues.json", "/admin/rq/0/data/workers.json"):
        response = client.get(path, headers={"Accept": "application/json"})
        assert response.status_code == 403
        assert "queues" not in (response.get_json() or {})
        assert "workers" not in (response.get_json() or {})


def test_rq_dashboard_works_for_admin_and_refuses_cross_site_actions(app, client, admin):
    response = client.get("/admin/rq/0/data/queues.json")
    assert response.status_code == 200
    assert "queues" in response.get_json()
    page = client.get("/admin/rq/")
    assert page.status_code == 200
    assert "unsafe-inline" in page.headers["Content-Security-Policy"]  # its own inline script, its pages only
    assert "unsafe-inline" not in client.get("/admin/").headers["Content-Security-Policy"]
    with app.app_context():
        job_id = get_queue().enqueue("workers.admin.check_provider_connection", "echo").id
    refused = client.post(f"/admin/rq/job/{job_id}/delete", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    allowed = client.post(f"/admin/rq/job/{job_id}/delete", headers={"Origin": "http://localhost"})
    assert allowed.status_code == 200


def test_admin_link_only_for_admins(app, client, auth):
    make_user(app, "bob")
    auth.login("bob")
    assert 'href="/admin/"' not in client.get("/chat/").get_data(as_text=True)
    auth.logout()
    make_user(app, "root", role="admin")
    auth.login("root")
    assert 'href="/admin/"' in client.get("/chat/").get_data(as_text=True)


def test_admin_created_with_the_cli_reaches_the_admin_pages(app, client, auth, runner):
    result = runner.invoke(args=["create-admin", "boss", "--password", "long enough pw"])
    assert result.exit_code == 0, result.output
    auth.login("boss", "long enough pw")
    assert client.get("/admin/").status_code == 200
